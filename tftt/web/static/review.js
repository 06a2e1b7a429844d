/* TFTT review page: viewer, drawing tools, metadata form and submission.
 *
 * Plain JavaScript, no build step, no external assets. Every coordinate kept and sent is in
 * IMAGE pixels (x = column, y = row, from 0, as the redaction spec says); the canvas has the
 * image's own size and is scaled with CSS, so a pointer position is converted with the ratio
 * of the canvas's pixel size to its on-screen size, whatever the zoom or device pixel ratio.
 */
(function () {
  "use strict";

  const D = JSON.parse(document.getElementById("case-data").textContent);
  const CSRF = document.querySelector('meta[name="csrf-token"]').content;
  const images = D.images;
  const seriesByUid = {};
  D.series.forEach(function (s) { seriesByUid[s.uid] = s; });

  const $ = function (id) { return document.getElementById(id); };
  const canvas = $("view");
  const ctx = canvas.getContext("2d");
  const stage = $("stage");
  const form = $("decision-form");
  const TOOLS = ["select", "blackout", "crop", "arrow", "ellipse", "text"];
  const ZOOMS = [0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8];
  const ANNOTATION_COLOR = "#FFFF00";

  // ------------------------------------------------------------------ state
  let edits = { series: {}, instances: {} };
  let current = 0;          // index into images
  let frameIdx = 0;         // index into the current image's preview_frames
  let tool = "select";
  let zoomMode = "fit";     // "fit" or a number
  let selected = null;      // {level, uid, kind, idx}
  let drag = null;          // the gesture in progress
  let playing = null;
  let specOrder = { series: [], instances: [] };
  const undoStack = [];
  const bitmaps = new Map();
  // the "after" view: the server renders the current image and frame with the current edits
  let viewAfter = false;
  let after = null;         // {key, url, bitmap} of the last after render received
  let afterPending = null;  // the key of the render in flight
  let windowName = "";      // a CT window preset ("" = the preview's own window)
  const PRESETS = D.window_presets || [];

  function blankEntry() { return { blackouts: [], crop: null, annotations: [], exclude: false }; }

  function fromSpec(e) {
    return {
      blackouts: (e.blackouts || []).map(function (r) {
        const copy = Object.assign({}, r);
        copy._proposal = !!(r.source && r.source !== "reviewer");
        return copy;
      }),
      crop: e.crop ? Object.assign({}, e.crop) : null,
      annotations: (e.annotations || []).map(function (a) { return Object.assign({}, a); }),
      exclude: !!e.exclude,
    };
  }

  function prefill(spec) {
    if (!spec) return;
    (spec.series || []).forEach(function (s) { edits.series[s.series_uid] = fromSpec(s); });
    (spec.instances || []).forEach(function (i) { edits.instances[i.sop_instance_uid] = fromSpec(i); });
    form.elements.burn_in_annotations.checked = !!spec.burn_in_annotations;
  }

  function entry(level, uid, create) {
    const table = edits[level];
    if (!table[uid] && create) table[uid] = blankEntry();
    return table[uid] || null;
  }

  function cur() { return images[current]; }
  function frameNumber() { const im = cur(); return im ? im.preview_frames[frameIdx] || 1 : 1; }

  function snapshot() {
    undoStack.push(JSON.stringify(edits));
    if (undoStack.length > 300) undoStack.shift();
  }

  function undo() {
    if (!undoStack.length) return;
    edits = JSON.parse(undoStack.pop());
    selected = null;
    refresh();
  }

  // ------------------------------------------------------------------ shapes of an image

  function shapesOf(im) {
    const out = [];
    [["series", im.series_uid], ["instances", im.uid]].forEach(function (pair) {
      const e = entry(pair[0], pair[1], false);
      if (!e) return;
      e.blackouts.forEach(function (s, idx) { out.push({ level: pair[0], uid: pair[1], kind: "blackouts", idx: idx, shape: s }); });
      if (e.crop) out.push({ level: pair[0], uid: pair[1], kind: "crop", idx: 0, shape: e.crop });
      e.annotations.forEach(function (s, idx) { out.push({ level: pair[0], uid: pair[1], kind: "annotations", idx: idx, shape: s }); });
    });
    return out;
  }

  function sameRef(a, b) {
    return !!a && !!b && a.level === b.level && a.uid === b.uid && a.kind === b.kind && a.idx === b.idx;
  }

  function shapeOf(ref) {
    const e = ref && entry(ref.level, ref.uid, false);
    if (!e) return null;
    if (ref.kind === "crop") return e.crop;
    return e[ref.kind][ref.idx] || null;
  }

  function onFrame(shape, n) {
    return !shape.frames || (shape.frames.first <= n && n <= shape.frames.last);
  }

  function isExcluded(im) {
    const s = entry("series", im.series_uid, false);
    const i = entry("instances", im.uid, false);
    return !!((s && s.exclude) || (i && i.exclude));
  }

  function isEdited(im) {
    return shapesOf(im).some(function (r) { return !r.shape._proposal; });
  }

  function fontSize(a, im) { return a.font_size || Math.max(6, Math.round(im.rows / 30)); }

  // ------------------------------------------------------------------ drawing

  // the size of what the canvas shows: the image, or its after render (smaller after a crop)
  function viewSize() {
    const im = cur();
    const shown = viewAfter && after && after.key === afterKey() ? after.bitmap : null;
    return shown ? { w: shown.width, h: shown.height } : { w: im.columns, h: im.rows };
  }

  function zoom() {
    const im = cur();
    if (!im) return 1;
    if (zoomMode !== "fit") return zoomMode;
    const v = viewSize();
    const w = Math.max(50, stage.clientWidth - 8), h = Math.max(50, stage.clientHeight - 8);
    return Math.min(w / v.w, h / v.h);
  }

  function applyZoom() {
    const im = cur();
    if (!im) return;
    const z = zoom();
    const v = viewSize();
    if (canvas.width !== v.w || canvas.height !== v.h) { canvas.width = v.w; canvas.height = v.h; }
    canvas.style.width = Math.round(v.w * z) + "px";
    canvas.style.height = Math.round(v.h * z) + "px";
    $("zoom-label").textContent = (zoomMode === "fit" ? "fit " : "") + Math.round(z * 100) + "%";
    render();
  }

  function windowOf(im) { return windowName && im.modality === "CT" ? windowName : ""; }

  function frameUrl(im, n) {
    const w = windowOf(im);
    return D.urls.images + "/" + encodeURIComponent(im.uid) + "/frames/" + n + ".jpg" +
      (w ? "?window=" + encodeURIComponent(w) : "");
  }

  function afterUrl(im, n) {
    const w = windowOf(im);
    return D.urls.images + "/" + encodeURIComponent(im.uid) + "/after.jpg?frame=" + n +
      (w ? "&window=" + encodeURIComponent(w) : "");
  }

  // what the after view of the current image and frame depends on: its URL and the spec
  function afterKey() {
    const im = cur();
    return im ? afterUrl(im, frameNumber()) + "\n" + JSON.stringify(buildSpec()) : "";
  }

  async function requestAfter() {
    const im = cur();
    if (!viewAfter || !im) return;
    const key = afterKey();
    if ((after && after.key === key) || afterPending === key) return;
    afterPending = key;
    const url = afterUrl(im, frameNumber());
    let res;
    try {
      res = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF, Accept: "image/jpeg" },
        body: JSON.stringify(buildSpec()),
      });
    } catch (e) {
      res = null;
    }
    if (afterPending !== key) return;  // superseded
    afterPending = null;
    if (!res || !res.ok) {
      let payload = {};
      try { payload = res ? await res.json() : {}; } catch (e) { payload = {}; }
      const errors = payload.errors || [{ field: "(after)", message: res ? (payload.detail || "HTTP " + res.status) : "The server cannot be reached." }];
      setView(false);
      showErrors(errors, "The after view cannot be shown:");
      return;
    }
    const bitmap = await createImageBitmap(await res.blob());
    if (after && after.bitmap) after.bitmap.close();
    after = { key: key, url: url, bitmap: bitmap };
    canvas.dataset.afterSrc = url;
    canvas.dataset.afterWidth = String(bitmap.width);
    canvas.dataset.afterHeight = String(bitmap.height);
    if (viewAfter && key === afterKey()) applyZoom();
  }

  function setView(toAfter) {
    if (toAfter && !cur()) return;
    viewAfter = !!toAfter;
    if (viewAfter) { stopPlay(); drag = null; clearErrors(); }
    canvas.dataset.view = viewAfter ? "after" : "before";
    stage.classList.toggle("after-view", viewAfter);
    const b = $("after-toggle");
    b.classList.toggle("on", viewAfter);
    b.setAttribute("aria-pressed", viewAfter ? "true" : "false");
    $("view-label").textContent = viewAfter ? "After: as it will be published (server render, read-only)" : "";
    applyZoom();
    requestAfter();
  }

  function setWindow(name) {
    windowName = PRESETS.indexOf(name) >= 0 ? name : "";
    $("window-preset").value = windowName;
    if (cur()) bitmap(cur(), frameNumber());
    applyZoom();
    requestAfter();
  }

  function cycleWindow() {
    const im = cur();
    if (!im || im.modality !== "CT") return;
    const names = [""].concat(PRESETS);
    setWindow(names[(names.indexOf(windowName) + 1) % names.length]);
  }

  function bitmap(im, n) {
    const url = frameUrl(im, n);
    let b = bitmaps.get(url);
    if (!b) {
      b = new Image();
      b.decoding = "async";
      b.onload = function () { if (cur() === im && frameNumber() === n) render(); };
      b.src = url;
      bitmaps.set(url, b);
      if (bitmaps.size > 96) bitmaps.delete(bitmaps.keys().next().value);
    }
    return b;
  }

  function strokeStyle(lw, color, dash) {
    ctx.lineWidth = lw;
    ctx.strokeStyle = color;
    ctx.setLineDash(dash ? [6 * lw, 4 * lw] : []);
  }

  function drawArrow(a, lw) {
    const dx = a.head_x - a.tail_x, dy = a.head_y - a.tail_y;
    const len = Math.hypot(dx, dy) || 1;
    const head = Math.max(8 * lw, Math.min(len / 2, 14 * lw));
    const ux = dx / len, uy = dy / len;
    ctx.beginPath();
    ctx.moveTo(a.tail_x, a.tail_y);
    ctx.lineTo(a.head_x, a.head_y);
    ctx.moveTo(a.head_x - head * (ux - uy * 0.5), a.head_y - head * (uy + ux * 0.5));
    ctx.lineTo(a.head_x, a.head_y);
    ctx.lineTo(a.head_x - head * (ux + uy * 0.5), a.head_y - head * (uy - ux * 0.5));
    ctx.stroke();
  }

  function textBox(a, im) {
    const size = fontSize(a, im);
    ctx.font = size + "px sans-serif";
    return { x: a.x, y: a.y, width: Math.max(4, ctx.measureText(a.text).width), height: size };
  }

  function drawShape(ref, im, lw, n) {
    const s = ref.shape;
    const here = onFrame(s, n);
    ctx.save();
    ctx.globalAlpha = here ? 1 : 0.35;
    if (ref.kind === "blackouts") {
      ctx.fillStyle = s._proposal ? "rgba(0,0,0,0.6)" : "rgba(0,0,0,0.85)";
      if (here) ctx.fillRect(s.x, s.y, s.width, s.height);
      strokeStyle(2 * lw, s._proposal ? "#ff9d2e" : "#ff4040", s._proposal || !here);
      ctx.strokeRect(s.x, s.y, s.width, s.height);
      label(s._proposal ? "proposed" + (s.source ? " (" + s.source + ")" : "") : (ref.level === "series" ? "series" : ""),
        s.x, s.y, lw, s._proposal ? "#ff9d2e" : "#ff4040");
    } else if (ref.kind === "crop") {
      ctx.fillStyle = "rgba(0,0,0,0.55)";
      ctx.beginPath();
      ctx.rect(0, 0, im.columns, im.rows);
      ctx.rect(s.x, s.y, s.width, s.height);
      ctx.fill("evenodd");
      strokeStyle(2 * lw, "#35d0ff", true);
      ctx.strokeRect(s.x, s.y, s.width, s.height);
      label("crop" + (ref.level === "series" ? " (series)" : ""), s.x, s.y, lw, "#35d0ff");
    } else {
      strokeStyle(2 * lw, s.color || ANNOTATION_COLOR, !here);
      ctx.fillStyle = s.color || ANNOTATION_COLOR;
      if (s.kind === "arrow") drawArrow(s, lw);
      else if (s.kind === "ellipse") {
        ctx.beginPath();
        ctx.ellipse(s.center_x, s.center_y, s.radius_x, s.radius_y, 0, 0, 2 * Math.PI);
        ctx.stroke();
      } else if (s.kind === "text") {
        ctx.font = fontSize(s, im) + "px sans-serif";
        ctx.textBaseline = "top";
        ctx.fillText(s.text, s.x, s.y);
      }
    }
    ctx.restore();
  }

  function label(text, x, y, lw, color) {
    if (!text) return;
    const size = 11 * lw;
    ctx.save();
    ctx.setLineDash([]);
    ctx.font = size + "px sans-serif";
    ctx.textBaseline = "bottom";
    ctx.fillStyle = color;
    ctx.fillText(text, x + 2 * lw, Math.max(size + 1, y - 2 * lw));
    ctx.restore();
  }

  function bounds(ref, im) {
    const s = ref.shape;
    if (ref.kind !== "annotations") return { x: s.x, y: s.y, width: s.width, height: s.height };
    if (s.kind === "arrow") {
      const x = Math.min(s.tail_x, s.head_x), y = Math.min(s.tail_y, s.head_y);
      return { x: x, y: y, width: Math.abs(s.head_x - s.tail_x), height: Math.abs(s.head_y - s.tail_y) };
    }
    if (s.kind === "ellipse") {
      return { x: s.center_x - s.radius_x, y: s.center_y - s.radius_y, width: 2 * s.radius_x, height: 2 * s.radius_y };
    }
    return textBox(s, im);
  }

  function renderAfter() {
    const v = viewSize();
    if (after && after.key === afterKey()) {
      ctx.drawImage(after.bitmap, 0, 0);
      return;
    }
    ctx.fillStyle = "#101214";
    ctx.fillRect(0, 0, v.w, v.h);
    ctx.fillStyle = "#9aa4b0";
    ctx.font = Math.max(10, Math.round(12 / zoom())) + "px sans-serif";
    ctx.textBaseline = "top";
    ctx.fillText("Rendering the after view…", 8 / zoom(), 8 / zoom());
  }

  function render() {
    const im = cur();
    if (!im) return;
    if (viewAfter) { renderAfter(); return; }
    const n = frameNumber();
    const b = bitmap(im, n);
    ctx.setLineDash([]);
    if (b.complete && b.naturalWidth) {
      ctx.drawImage(b, 0, 0, im.columns, im.rows);
    } else {
      ctx.fillStyle = "#101214";
      ctx.fillRect(0, 0, im.columns, im.rows);
    }
    const lw = 1 / zoom();
    const shapes = shapesOf(im);
    // crops first (dimming), then blackouts, then annotations
    const order = { crop: 0, blackouts: 1, annotations: 2 };
    shapes.sort(function (a, b2) { return order[a.kind] - order[b2.kind]; });
    const instanceCrop = shapes.some(function (r) { return r.kind === "crop" && r.level === "instances"; });
    shapes.forEach(function (ref) {
      if (ref.kind === "crop" && ref.level === "series" && instanceCrop) return; // replaced
      drawShape(ref, im, lw, n);
    });
    if (drag && drag.draft) drawShape(drag.draft, im, lw, n);
    const sel = selected && shapes.find(function (r) { return sameRef(r, selected); });
    if (sel) {
      const bx = bounds(sel, im);
      ctx.save();
      strokeStyle(1.5 * lw, "#4c9dff", true);
      ctx.strokeRect(bx.x - 3 * lw, bx.y - 3 * lw, bx.width + 6 * lw, bx.height + 6 * lw);
      if (sel.kind !== "annotations") {
        ctx.setLineDash([]);
        ctx.fillStyle = "#4c9dff";
        const h = 8 * lw;
        ctx.fillRect(bx.x + bx.width - h / 2, bx.y + bx.height - h / 2, h, h);
      }
      ctx.restore();
    }
  }

  // ------------------------------------------------------------------ pointer → image pixels

  function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, v)); }

  function imagePoint(ev) {
    const r = canvas.getBoundingClientRect();
    const x = (ev.clientX - r.left) * canvas.width / r.width;
    const y = (ev.clientY - r.top) * canvas.height / r.height;
    return { x: clamp(x, 0, canvas.width), y: clamp(y, 0, canvas.height) };
  }

  // A box from two points in continuous image coordinates, covering every pixel touched.
  function box(p, q) {
    const im = cur();
    const x0 = Math.floor(Math.min(p.x, q.x)), y0 = Math.floor(Math.min(p.y, q.y));
    const x1 = Math.min(im.columns, Math.ceil(Math.max(p.x, q.x)));
    const y1 = Math.min(im.rows, Math.ceil(Math.max(p.y, q.y)));
    return { x: x0, y: y0, width: Math.max(1, x1 - x0), height: Math.max(1, y1 - y0) };
  }

  function frameRange() {
    const im = cur();
    if (im.frames <= 1 || $("all-frames").checked) return null;
    let first = clamp(parseInt($("frame-first").value, 10) || 1, 1, im.frames);
    let last = clamp(parseInt($("frame-last").value, 10) || im.frames, 1, im.frames);
    if (last < first) { const t = first; first = last; last = t; }
    return { first: first, last: last };
  }

  function targetLevel() {
    const im = cur();
    return $("scope").value === "series" ? ["series", im.series_uid] : ["instances", im.uid];
  }

  function hit(p) {
    const im = cur();
    const tol = 6 / zoom();
    const shapes = shapesOf(im);
    for (let i = shapes.length - 1; i >= 0; i--) {
      const ref = shapes[i], s = ref.shape;
      if (ref.kind === "annotations") {
        if (s.kind === "arrow") {
          if (segmentDistance(p, s) <= tol) return { ref: ref, mode: "move" };
        } else if (s.kind === "ellipse") {
          const d = Math.hypot((p.x - s.center_x) / s.radius_x, (p.y - s.center_y) / s.radius_y);
          if (d <= 1 + tol / Math.min(s.radius_x, s.radius_y)) return { ref: ref, mode: "move" };
        } else {
          const b = textBox(s, im);
          if (p.x >= b.x - tol && p.x <= b.x + b.width + tol && p.y >= b.y - tol && p.y <= b.y + b.height + tol) {
            return { ref: ref, mode: "move" };
          }
        }
      }
    }
    for (let i = shapes.length - 1; i >= 0; i--) {
      const ref = shapes[i], s = ref.shape;
      if (ref.kind === "annotations") continue;
      const nearCorner = Math.abs(p.x - (s.x + s.width)) <= 1.5 * tol && Math.abs(p.y - (s.y + s.height)) <= 1.5 * tol;
      if (nearCorner) return { ref: ref, mode: "resize" };
      const inside = p.x >= s.x - tol && p.x <= s.x + s.width + tol && p.y >= s.y - tol && p.y <= s.y + s.height + tol;
      if (!inside) continue;
      if (ref.kind === "blackouts") return { ref: ref, mode: "move" };
      const onEdge = p.x <= s.x + tol || p.x >= s.x + s.width - tol || p.y <= s.y + tol || p.y >= s.y + s.height - tol;
      if (onEdge) return { ref: ref, mode: "move" };
    }
    return null;
  }

  function segmentDistance(p, a) {
    const vx = a.head_x - a.tail_x, vy = a.head_y - a.tail_y;
    const len2 = vx * vx + vy * vy || 1;
    const t = clamp(((p.x - a.tail_x) * vx + (p.y - a.tail_y) * vy) / len2, 0, 1);
    return Math.hypot(p.x - (a.tail_x + t * vx), p.y - (a.tail_y + t * vy));
  }

  function moveShape(ref, orig, dx, dy) {
    const im = cur();
    const s = shapeOf(ref);
    if (!s) return;
    if (ref.kind !== "annotations") {
      s.x = clamp(orig.x + dx, 0, im.columns - s.width);
      s.y = clamp(orig.y + dy, 0, im.rows - s.height);
    } else if (s.kind === "arrow") {
      s.tail_x = orig.tail_x + dx; s.tail_y = orig.tail_y + dy;
      s.head_x = orig.head_x + dx; s.head_y = orig.head_y + dy;
    } else if (s.kind === "ellipse") {
      s.center_x = orig.center_x + dx; s.center_y = orig.center_y + dy;
    } else {
      s.x = orig.x + dx; s.y = orig.y + dy;
    }
  }

  function draftFor(kind, p, q) {
    if (kind === "blackout") {
      const b = box(p, q);
      return { kind: "blackouts", level: "draft", shape: Object.assign(b, { frames: frameRange(), source: "reviewer" }) };
    }
    if (kind === "crop") return { kind: "crop", level: "draft", shape: box(p, q) };
    if (kind === "arrow") {
      return { kind: "annotations", level: "draft", shape: {
        kind: "arrow", color: ANNOTATION_COLOR, frames: frameRange(),
        tail_x: Math.round(p.x), tail_y: Math.round(p.y), head_x: Math.round(q.x), head_y: Math.round(q.y) } };
    }
    const b = box(p, q);
    return { kind: "annotations", level: "draft", shape: {
      kind: "ellipse", color: ANNOTATION_COLOR, frames: frameRange(),
      center_x: Math.round(b.x + b.width / 2), center_y: Math.round(b.y + b.height / 2),
      radius_x: Math.max(1, Math.round(b.width / 2)), radius_y: Math.max(1, Math.round(b.height / 2)) } };
  }

  canvas.addEventListener("pointerdown", function (ev) {
    if (ev.button !== 0 || !cur()) return;
    canvas.focus();
    if (viewAfter) { setView(false); return; }  // the after view is read-only: back to drawing
    const p = imagePoint(ev);
    if (tool === "select") {
      const h = hit(p);
      selected = h ? h.ref : null;
      if (h) {
        snapshot();
        drag = { mode: h.mode, ref: h.ref, start: p, orig: Object.assign({}, shapeOf(h.ref)), changed: false };
        canvas.setPointerCapture(ev.pointerId);
      }
      refresh();
      return;
    }
    if (tool === "text") {
      const text = $("label-text").value.trim();
      if (!text) { flash("Type the label text first (the field next to the tools), then click on the image."); $("label-text").focus(); return; }
      snapshot();
      const where = targetLevel();
      const e = entry(where[0], where[1], true);
      e.annotations.push({ kind: "text", color: ANNOTATION_COLOR, frames: frameRange(), x: Math.round(p.x), y: Math.round(p.y), text: text, font_size: null });
      selected = { level: where[0], uid: where[1], kind: "annotations", idx: e.annotations.length - 1 };
      refresh();
      return;
    }
    drag = { mode: "draw", start: p, draft: null };
    canvas.setPointerCapture(ev.pointerId);
  });

  canvas.addEventListener("pointermove", function (ev) {
    if (!drag) return;
    const p = imagePoint(ev);
    if (drag.mode === "draw") {
      drag.draft = draftFor(tool, drag.start, p);
    } else if (drag.mode === "move") {
      const dx = Math.round(p.x - drag.start.x), dy = Math.round(p.y - drag.start.y);
      if (dx || dy) drag.changed = true;
      moveShape(drag.ref, drag.orig, dx, dy);
    } else if (drag.mode === "resize") {
      const s = shapeOf(drag.ref), im = cur();
      s.width = clamp(Math.round(p.x) - s.x, 1, im.columns - s.x);
      s.height = clamp(Math.round(p.y) - s.y, 1, im.rows - s.y);
      drag.changed = true;
    }
    render();
  });

  function endDrag(ev) {
    if (!drag) return;
    const d = drag;
    drag = null;
    if (d.mode === "draw") {
      const p = imagePoint(ev);
      const draft = draftFor(tool, d.start, p);
      const big = Math.abs(p.x - d.start.x) >= 2 && Math.abs(p.y - d.start.y) >= 2;
      const long = Math.hypot(p.x - d.start.x, p.y - d.start.y) >= 3;
      if ((tool === "arrow" && long) || (tool !== "arrow" && big)) {
        snapshot();
        const where = targetLevel();
        const e = entry(where[0], where[1], true);
        if (draft.kind === "crop") {
          e.crop = draft.shape;
          selected = { level: where[0], uid: where[1], kind: "crop", idx: 0 };
        } else {
          e[draft.kind].push(draft.shape);
          selected = { level: where[0], uid: where[1], kind: draft.kind, idx: e[draft.kind].length - 1 };
        }
      }
    } else if (!d.changed) {
      undoStack.pop();
    } else {
      const s = shapeOf(d.ref);
      if (s && s._proposal) { s._proposal = false; s.source = "reviewer"; }
    }
    refresh();
  }
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", function () { drag = null; render(); });

  function deleteSelected() {
    if (!selected) return;
    const e = entry(selected.level, selected.uid, false);
    if (!e) return;
    snapshot();
    if (selected.kind === "crop") e.crop = null;
    else e[selected.kind].splice(selected.idx, 1);
    selected = null;
    refresh();
  }

  // ------------------------------------------------------------------ navigation

  function showImage(i, keepFrame) {
    if (i < 0 || i >= images.length) return;
    stopPlay();
    current = i;
    if (!keepFrame) frameIdx = 0;
    selected = null;
    const im = cur();
    canvas.width = im.columns;
    canvas.height = im.rows;
    $("window-opt").hidden = im.modality !== "CT" || !PRESETS.length;
    const slider = $("frame-slider");
    slider.max = String(im.preview_frames.length - 1);
    slider.value = String(frameIdx);
    $("frame-first").max = $("frame-last").max = String(im.frames);
    $("frame-last").value = String(im.frames);
    $("frame-first").value = "1";
    $("frames-opt").classList.toggle("unavailable", im.frames <= 1);
    $("all-frames").disabled = im.frames <= 1;
    syncFrameInputs();
    document.querySelectorAll(".thumb.current").forEach(function (t) { t.classList.remove("current"); });
    const thumb = document.querySelector('.thumb[data-index="' + i + '"]');
    if (thumb) { thumb.classList.add("current"); thumb.scrollIntoView({ block: "nearest" }); }
    applyZoom();
    refresh();
  }

  function showFrame(k) {
    const im = cur();
    if (!im) return;
    const count = im.preview_frames.length;
    frameIdx = ((k % count) + count) % count;
    $("frame-slider").value = String(frameIdx);
    const next = im.preview_frames[(frameIdx + 1) % count];
    bitmap(im, next);
    refresh();
  }

  function stopPlay() {
    if (playing) { clearInterval(playing); playing = null; $("play").textContent = "Play"; }
  }

  function togglePlay() {
    if (playing) { stopPlay(); return; }
    if (!cur() || cur().preview_frames.length < 2) return;
    if (viewAfter) setView(false);  // the cine plays the previews
    playing = setInterval(function () { showFrame(frameIdx + 1); }, 125);
    $("play").textContent = "Stop";
  }

  function syncFrameInputs() {
    const all = $("all-frames").checked || cur().frames <= 1;
    $("frame-first").disabled = all;
    $("frame-last").disabled = all;
  }

  // ------------------------------------------------------------------ side panel and strip

  function describe(ref, im) {
    const s = ref.shape;
    const where = ref.level === "series" ? "series" : "image";
    const frames = s.frames ? "frames " + s.frames.first + "–" + s.frames.last : "all frames";
    if (ref.kind === "blackouts") {
      const head = s._proposal ? "Proposed blackout" + (s.source ? " (" + s.source + ")" : "") : "Blackout";
      return head + " · " + where + " · " + frames + " · " + s.x + "," + s.y + " " + s.width + "×" + s.height;
    }
    if (ref.kind === "crop") return "Crop · " + where + " · " + s.x + "," + s.y + " " + s.width + "×" + s.height;
    if (s.kind === "arrow") return "Arrow · " + where + " · " + frames;
    if (s.kind === "ellipse") return "Ellipse · " + where + " · " + frames;
    return "Text “" + s.text + "” · " + where + " · " + frames;
  }

  function refreshList() {
    const im = cur();
    const list = $("shape-list");
    list.textContent = "";
    const n = frameNumber();
    const shapes = im ? shapesOf(im) : [];
    if (!shapes.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "No edits. Draw with the tools above.";
      list.appendChild(li);
      return;
    }
    shapes.forEach(function (ref) {
      const li = document.createElement("li");
      if (ref.shape._proposal) li.classList.add("proposal");
      if (!onFrame(ref.shape, n)) li.classList.add("elsewhere");
      if (sameRef(ref, selected)) li.classList.add("selected");
      const what = document.createElement("span");
      what.className = "what";
      what.textContent = describe(ref, im);
      const del = document.createElement("button");
      del.type = "button";
      del.textContent = "×";
      del.title = "Delete";
      del.setAttribute("aria-label", "Delete " + what.textContent);
      del.addEventListener("click", function (ev) { ev.stopPropagation(); selected = ref; deleteSelected(); });
      li.addEventListener("click", function () {
        selected = ref;
        if (tool !== "select") setTool("select");
        refresh();
      });
      li.appendChild(what);
      li.appendChild(del);
      list.appendChild(li);
    });
  }

  function refreshStrip() {
    document.querySelectorAll(".thumb").forEach(function (t) {
      const im = images[Number(t.dataset.index)];
      t.classList.toggle("excluded", isExcluded(im));
      t.classList.toggle("edited", isEdited(im));
    });
    document.querySelectorAll("[data-exclude-series]").forEach(function (box) {
      const e = entry("series", box.dataset.excludeSeries, false);
      box.checked = !!(e && e.exclude);
    });
  }

  function refreshInfo() {
    const im = cur();
    const info = $("image-info");
    info.textContent = "";
    if (!im) { info.textContent = "This case has no images to review."; return; }
    const s = seriesByUid[im.series_uid];
    const pos = s.images.indexOf(current) + 1;
    const parts = [
      "Image " + (current + 1) + " of " + images.length,
      "series " + (s.number !== null ? s.number : "?") + " (" + pos + "/" + s.images.length + ")",
      im.modality || "?",
      im.columns + "×" + im.rows + " px",
      im.frames + (im.frames === 1 ? " frame" : " frames"),
    ];
    info.appendChild(document.createTextNode(parts.join(" · ")));
    im.flags.forEach(function (f) {
      const span = document.createElement("span");
      span.className = "flag";
      span.textContent = f;
      if (f === "burned-in risk" && im.risk.length) span.title = im.risk.join(", ");
      info.appendChild(span);
    });
    if (isExcluded(im)) {
      const span = document.createElement("span");
      span.className = "flag warn";
      span.textContent = "excluded";
      info.appendChild(span);
    }
    const q = $("qbanner");
    q.hidden = !im.quarantine.length;
    q.textContent = im.quarantine.length ? "Quarantined: " + im.quarantine.join("; ") : "";
    stage.classList.toggle("excluded", isExcluded(im));
    const ex = entry("instances", im.uid, false);
    $("exclude-image").classList.toggle("on", !!(ex && ex.exclude));
    $("exclude-image").textContent = "";
    $("exclude-image").append(ex && ex.exclude ? "Include image " : "Exclude image ");
    const k = document.createElement("kbd"); k.textContent = "X"; $("exclude-image").appendChild(k);
    const n = frameNumber();
    $("frame-label").textContent = "frame " + n + " of " + im.frames +
      (im.preview_frames.length < im.frames ? " (preview " + (frameIdx + 1) + "/" + im.preview_frames.length + ")" : "");
  }

  function refresh() {
    refreshInfo();
    refreshList();
    refreshStrip();
    if (viewAfter) { applyZoom(); requestAfter(); } else render();
  }

  function setTool(name) {
    tool = name;
    document.querySelectorAll("[data-tool]").forEach(function (b) { b.classList.toggle("active", b.dataset.tool === name); });
    canvas.classList.toggle("tool-select", name === "select");
  }

  function toggleExcludeImage() {
    const im = cur();
    if (!im) return;
    snapshot();
    const e = entry("instances", im.uid, true);
    e.exclude = !e.exclude;
    refresh();
  }

  function toggleExcludeSeries(uid, value) {
    snapshot();
    const e = entry("series", uid, true);
    e.exclude = value === undefined ? !e.exclude : value;
    refresh();
  }

  let flashTimer = null;
  function flash(message) {
    const info = $("image-info");
    info.textContent = message;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(refreshInfo, 2500);
  }

  // ------------------------------------------------------------------ the decision

  function clean(shape) {
    const out = {};
    Object.keys(shape).forEach(function (k) { if (k.charAt(0) !== "_") out[k] = shape[k]; });
    return out;
  }

  function hasContent(e) {
    return e.blackouts.length || e.crop || e.annotations.length || e.exclude;
  }

  function toSpec(e, key) {
    return Object.assign(key, {
      blackouts: e.blackouts.map(clean),
      crop: e.crop ? { x: e.crop.x, y: e.crop.y, width: e.crop.width, height: e.crop.height } : null,
      annotations: e.annotations.map(clean),
      exclude: !!e.exclude,
    });
  }

  function orderedKeys(table, known) {
    const keys = known.filter(function (k) { return table[k]; });
    Object.keys(table).forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); });
    return keys;
  }

  // the spec as the decision carries it; specOrder maps its positions back to UIDs
  function buildSpec() {
    const f = form.elements;
    const spec = { spec_version: 1, series: [], instances: [], burn_in_annotations: f.burn_in_annotations.checked };
    specOrder = { series: [], instances: [] };
    orderedKeys(edits.series, D.series.map(function (s) { return s.uid; })).forEach(function (uid) {
      const e = edits.series[uid];
      if (!hasContent(e)) return;
      spec.series.push(toSpec(e, { series_uid: uid }));
      specOrder.series.push(uid);
    });
    orderedKeys(edits.instances, images.map(function (i) { return i.uid; })).forEach(function (uid) {
      const e = edits.instances[uid];
      if (!hasContent(e)) return;
      spec.instances.push(toSpec(e, { sop_instance_uid: uid }));
      specOrder.instances.push(uid);
    });
    return spec;
  }

  function buildDecision(approved) {
    const f = form.elements;
    const spec = buildSpec();
    const text = function (name) { return f[name].value.trim(); };
    let title = text("title");
    if (!approved && !title) title = "(rejected)";
    return {
      approved: approved,
      reviewer: text("reviewer"),
      spec: spec,
      teaching_metadata: {
        title: title,
        history: text("history"),
        findings: text("findings"),
        diagnosis: text("diagnosis"),
        keywords: f.keywords.value.split(/[,;\n]/).map(function (k) { return k.trim(); }).filter(Boolean),
        author: text("author"),
        abstract: text("abstract") || null,
        public: f.public.value === "" ? null : f.public.value === "true",
      },
      publish_now: f.publish_now.value === "" ? null : f.publish_now.value === "true",
      notes: text("notes") || null,
    };
  }

  function clearErrors() {
    const box = $("errors");
    box.hidden = true;
    box.textContent = "";
    form.querySelectorAll(".invalid").forEach(function (el) { el.classList.remove("invalid"); });
    form.querySelectorAll(".field-error").forEach(function (el) { el.remove(); });
    document.querySelectorAll(".thumb.has-error").forEach(function (t) { t.classList.remove("has-error"); });
  }

  function imageForField(field) {
    const m = /^spec\.(series|instances)\[(\d+)\]/.exec(field);
    if (!m) return -1;
    const uid = specOrder[m[1]][Number(m[2])];
    if (m[1] === "instances") return images.findIndex(function (i) { return i.uid === uid; });
    return images.findIndex(function (i) { return i.series_uid === uid; });
  }

  function showErrors(errors, heading) {
    clearErrors();
    const box = $("errors");
    const ul = document.createElement("ul");
    errors.forEach(function (err) {
      const field = String(err.field || "");
      const formField = field.replace(/\[\d+\]$/, "");
      const label = form.querySelector('[data-field="' + CSS.escape(formField) + '"]');
      if (label) {
        label.classList.add("invalid");
        const span = document.createElement("span");
        span.className = "field-error";
        span.textContent = err.message;
        label.appendChild(span);
      }
      const li = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = field;
      li.appendChild(code);
      li.appendChild(document.createTextNode(": " + err.message));
      const at = imageForField(field);
      if (at >= 0) {
        const thumb = document.querySelector('.thumb[data-index="' + at + '"]');
        if (thumb) thumb.classList.add("has-error");
        const a = document.createElement("a");
        a.href = "#";
        a.textContent = " show";
        a.addEventListener("click", function (ev) { ev.preventDefault(); showImage(at); });
        li.appendChild(a);
      }
      ul.appendChild(li);
    });
    box.appendChild(document.createTextNode(heading || "The decision was not accepted:"));
    box.appendChild(ul);
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }

  function setBusy(busy) {
    $("approve").disabled = busy;
    $("reject").disabled = busy;
  }

  async function readStatus() {
    const res = await fetch(D.urls.status, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!res.ok) throw new Error("HTTP " + res.status);
    return res.json();
  }

  function showStatus(s) {
    const badge = $("run-state");
    badge.textContent = s.status.replace(/_/g, " ") + (s.run ? " · run " + s.run.name : "");
  }

  let submittedKey = null;

  async function submit(approved) {
    clearErrors();
    setBusy(true);
    try {
      const before = await readStatus();
      submittedKey = before.run ? before.run.pause_key : null;
    } catch (e) { submittedKey = null; }
    let res;
    try {
      res = await fetch(D.urls.decision, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF, Accept: "application/json" },
        body: JSON.stringify(buildDecision(approved)),
      });
    } catch (e) {
      showErrors([{ field: "(network)", message: "The server cannot be reached; try again." }]);
      setBusy(false);
      return;
    }
    let payload = {};
    try { payload = await res.json(); } catch (e) { payload = {}; }
    if (res.ok) { follow(approved); return; }
    let errors = payload.errors;
    if (res.status === 401) errors = [{ field: "(session)", message: "Your login has expired: log in again in another tab, then submit again." }];
    if (res.status === 403) errors = [{ field: "(session)", message: "The page's security token is no longer valid: log in again in another tab, then submit again." }];
    showErrors(errors || [{ field: "(server)", message: payload.detail || "HTTP " + res.status }]);
    setBusy(false);
  }

  function follow(approved) {
    const box = $("follow");
    box.hidden = false;
    box.className = "follow";
    box.textContent = (approved ? "Approved" : "Rejected") + ". Following the case…";
    const started = Date.now();
    const tick = async function () {
      let s;
      try { s = await readStatus(); } catch (e) { setTimeout(tick, 3000); return; }
      showStatus(s);
      const run = s.run ? s.run.name : (s.run_error ? "unavailable (" + s.run_error + ")" : "unknown");
      box.textContent = "Case " + s.status.replace(/_/g, " ") + " · run " + run;
      if (s.done) {
        const final = {
          published: "Published.",
          ready: "Ready: it will be published in the nightly batch.",
          quarantined: "Quarantined: see the case's quarantine records.",
        }[s.status];
        box.textContent = final || ("Finished: case " + s.status.replace(/_/g, " ") + ", run " + run + ".");
        box.classList.add(s.status === "published" || s.status === "ready" ? "done-ok" : "done-bad");
        box.dataset.done = s.status;
        return;
      }
      const again = s.status === "awaiting_review" && s.run && s.run.type === "PAUSED" &&
        s.run.pause_key && s.run.pause_key !== submittedKey;
      if (again) {
        box.textContent = "The flow asks for the review again: it did not accept the decision (see the run's description).";
        box.classList.add("done-bad");
        setBusy(false);
        return;
      }
      if (Date.now() - started > 30 * 60 * 1000) { box.textContent += " (stopped following; reload to check)"; return; }
      setTimeout(tick, 1500);
    };
    setTimeout(tick, 800);
  }

  // ------------------------------------------------------------------ wiring

  document.querySelectorAll("[data-tool]").forEach(function (b) {
    b.addEventListener("click", function () { setTool(b.dataset.tool); });
  });
  document.querySelectorAll(".thumb").forEach(function (t) {
    t.addEventListener("click", function () { showImage(Number(t.dataset.index)); });
  });
  document.querySelectorAll("[data-exclude-series]").forEach(function (box) {
    box.addEventListener("change", function () { toggleExcludeSeries(box.dataset.excludeSeries, box.checked); });
  });
  $("frame-slider").addEventListener("input", function () { showFrame(Number($("frame-slider").value)); });
  $("prev-frame").addEventListener("click", function () { showFrame(frameIdx - 1); });
  $("next-frame").addEventListener("click", function () { showFrame(frameIdx + 1); });
  $("play").addEventListener("click", togglePlay);
  $("all-frames").addEventListener("change", syncFrameInputs);
  $("exclude-image").addEventListener("click", toggleExcludeImage);
  $("undo").addEventListener("click", undo);
  $("delete").addEventListener("click", deleteSelected);
  $("zoom-in").addEventListener("click", function () { stepZoom(1); });
  $("zoom-out").addEventListener("click", function () { stepZoom(-1); });
  $("zoom-fit").addEventListener("click", function () { zoomMode = "fit"; applyZoom(); });
  $("after-toggle").addEventListener("click", function () { setView(!viewAfter); });
  $("window-preset").addEventListener("change", function () { setWindow($("window-preset").value); });
  $("approve").addEventListener("click", function () { submit(true); });
  $("reject").addEventListener("click", function () { submit(false); });
  window.addEventListener("resize", applyZoom);

  function stepZoom(dir) {
    const z = zoom();
    let next = dir > 0 ? ZOOMS.find(function (v) { return v > z + 1e-6; }) : ZOOMS.slice().reverse().find(function (v) { return v < z - 1e-6; });
    if (next === undefined) next = dir > 0 ? ZOOMS[ZOOMS.length - 1] : ZOOMS[0];
    zoomMode = next;
    applyZoom();
  }

  document.addEventListener("keydown", function (ev) {
    const t = ev.target;
    if (t && t.matches && (t.matches("input, textarea, select") || t.isContentEditable)) {
      if (ev.key === "Escape") t.blur();
      return;
    }
    if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && ev.key.toLowerCase() === "z") { undo(); ev.preventDefault(); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const key = ev.key;
    const tools = { v: "select", b: "blackout", c: "crop", a: "arrow", e: "ellipse", t: "text" };
    let handled = true;
    if (tools[key.toLowerCase()] && !ev.shiftKey) setTool(tools[key.toLowerCase()]);
    else if (key === "x") toggleExcludeImage();
    else if (key === "X") { if (cur()) toggleExcludeSeries(cur().series_uid); }
    else if (key === "s" || key === "S") { $("scope").value = $("scope").value === "image" ? "series" : "image"; }
    else if (key === "ArrowRight") showFrame(frameIdx + 1);
    else if (key === "ArrowLeft") showFrame(frameIdx - 1);
    else if (key === "ArrowDown" || key === "PageDown") showImage(current + 1);
    else if (key === "ArrowUp" || key === "PageUp") showImage(current - 1);
    else if (key === "Delete" || key === "Backspace") deleteSelected();
    else if (key === "Escape") { drag = null; selected = null; refresh(); }
    else if (key === "+" || key === "=") stepZoom(1);
    else if (key === "-") stepZoom(-1);
    else if (key === "0") { zoomMode = "fit"; applyZoom(); }
    else if (key === "1") { zoomMode = 1; applyZoom(); }
    else if (key === "p" || key === "P") togglePlay();
    else if (key === "f" || key === "F") setView(!viewAfter);
    else if (key === "w" || key === "W") cycleWindow();
    else handled = false;
    if (handled) ev.preventDefault();
  });

  prefill(D.proposed_spec);
  canvas.dataset.view = "before";
  setTool("select");
  if (images.length) showImage(0);
  else refresh();
  readStatus().then(showStatus).catch(function () {});
})();
