"""The self-contained ``index.html`` of a published case folder.

One HTML file, no external assets, no network: the teaching text is rendered on the server side
(HTML-escaped: it is untrusted text), and a small plain-JavaScript viewer pages through the
images and frames listed in the manifest: buttons; keyboard ←/→ frames, ↑/↓ or
PageUp/PageDown images, Home/End, ``A`` annotations; ``#image=N&frame=M`` in the address opens
that frame. Without JavaScript, a list of links to every JPEG and DICOM file remains. A
Content-Security-Policy allows only the page's own inline script and style, and images from the
folder.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

_SECTIONS = (
    ("abstract", "Abstract"),
    ("history", "History"),
    ("findings", "Findings"),
    ("diagnosis", "Diagnosis"),
)

_STYLE = """
body{margin:0;font:15px/1.45 system-ui,sans-serif;background:#111;color:#ddd}
header,main{max-width:1100px;margin:0 auto;padding:12px 18px}
h1{margin:.2em 0;font-size:1.5em;color:#fff}h2{font-size:1.05em;margin:1em 0 .2em;color:#9cf}
.meta{color:#aaa}.pre{white-space:pre-wrap;margin:0}
#viewer{background:#000;border:1px solid #333;padding:8px;text-align:center}
#image{max-width:100%;max-height:75vh;image-rendering:auto}
#caption{color:#bbb;margin:6px 0}
nav button,nav a{background:#222;color:#ddd;border:1px solid #444;border-radius:4px;
padding:5px 10px;margin:2px;font:inherit;cursor:pointer;text-decoration:none}
nav button:disabled{opacity:.4;cursor:default}nav button[aria-pressed=true]{background:#264}
.help{color:#777;font-size:.85em}ol.files{color:#aaa}
"""

_SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("case-data").textContent);
  var images = data.images, i = 0, f = 0, annotated = false;
  var img = document.getElementById("image"), caption = document.getElementById("caption");
  var btn = function (id) { return document.getElementById(id); };
  function show() {
    var image = images[i], frame = image.frames[f];
    var useAnnotated = annotated && frame.annotated_jpeg;
    img.src = useAnnotated ? frame.annotated_jpeg : frame.jpeg;
    img.alt = "Image " + (i + 1) + ", frame " + frame.number;
    var text = "Image " + (i + 1) + " of " + images.length;
    if (image.series_number !== null) { text += " \\u00b7 series " + image.series_number; }
    if (image.instance_number !== null) { text += " \\u00b7 instance " + image.instance_number; }
    if (image.number_of_frames > 1) {
      text += " \\u00b7 frame " + frame.number + " of " + image.number_of_frames;
      if (image.frames.length < image.number_of_frames) {
        text += " (" + image.frames.length + " key frames)";
      }
    }
    if (image.modality) { text += " \\u00b7 " + image.modality; }
    if (useAnnotated) { text += " \\u00b7 annotated"; }
    caption.textContent = text;
    btn("dicom").href = image.dicom;
    btn("prev-image").disabled = i === 0;
    btn("next-image").disabled = i === images.length - 1;
    btn("prev-frame").disabled = i === 0 && f === 0;
    btn("next-frame").disabled = i === images.length - 1 && f === image.frames.length - 1;
    var hasAnnotation = image.frames.some(function (fr) { return !!fr.annotated_jpeg; });
    btn("annotations").disabled = !hasAnnotation;
    btn("annotations").setAttribute("aria-pressed", annotated ? "true" : "false");
  }
  function image(step) {
    var next = Math.min(Math.max(i + step, 0), images.length - 1);
    if (next !== i) { i = next; f = 0; show(); }
  }
  function frame(step) {
    var frames = images[i].frames.length;
    if (f + step >= 0 && f + step < frames) { f += step; }
    else if (step > 0 && i < images.length - 1) { i += 1; f = 0; }
    else if (step < 0 && i > 0) { i -= 1; f = images[i].frames.length - 1; }
    else { return; }
    show();
  }
  btn("prev-image").onclick = function () { image(-1); };
  btn("next-image").onclick = function () { image(1); };
  btn("prev-frame").onclick = function () { frame(-1); };
  btn("next-frame").onclick = function () { frame(1); };
  btn("annotations").onclick = function () { annotated = !annotated; show(); };
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) { return; }
    var actions = {
      ArrowLeft: function () { frame(-1); }, ArrowRight: function () { frame(1); },
      ArrowUp: function () { image(-1); }, ArrowDown: function () { image(1); },
      PageUp: function () { image(-1); }, PageDown: function () { image(1); },
      Home: function () { i = 0; f = 0; show(); },
      End: function () { i = images.length - 1; f = 0; show(); },
      a: function () { annotated = !annotated; show(); },
      A: function () { annotated = !annotated; show(); }
    };
    if (actions[e.key]) { e.preventDefault(); actions[e.key](); }
  });
  var wanted = /^#image=(\\d+)(?:&frame=(\\d+))?$/.exec(window.location.hash);
  if (wanted) {
    i = Math.min(Math.max(parseInt(wanted[1], 10) - 1, 0), images.length - 1);
    var number = wanted[2] ? parseInt(wanted[2], 10) : 1;
    images[i].frames.forEach(function (fr, k) { if (fr.number === number) { f = k; } });
  }
  document.getElementById("viewer").hidden = false;
  show();
}());
"""


def _json_for_script(value: Any) -> str:
    """JSON that cannot end its ``<script>`` element early."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_case_page(manifest: dict[str, Any]) -> str:
    """The ``index.html`` for a case folder's ``manifest`` (as written to ``manifest.json``)."""
    meta = manifest["metadata"]
    title = escape(str(meta.get("title") or manifest["case_id"]))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">",
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{_STYLE}</style></head><body>",
        f"<header><h1>{title}</h1>",
    ]
    byline = [escape(meta["author"])] if isinstance(meta.get("author"), str) else []
    byline.append(f"case {escape(manifest['case_id'])}")
    parts.append(f'<p class="meta">{" · ".join(byline)}</p></header><main>')
    parts.append(
        '<section id="viewer" hidden><figure style="margin:0">'
        '<img id="image" alt=""><figcaption id="caption"></figcaption></figure>'
        '<nav><button id="prev-image" title="Previous image (↑)">« Image</button>'
        '<button id="prev-frame" title="Previous frame (←)">◀ Frame</button>'
        '<button id="next-frame" title="Next frame (→)">Frame ▶</button>'
        '<button id="next-image" title="Next image (↓)">Image »</button>'
        '<button id="annotations" aria-pressed="false" title="Annotations (A)">Annotations</button>'
        '<a id="dicom" href="#" download>DICOM</a></nav>'
        '<p class="help">← → frames · ↑ ↓ images · A annotations</p></section>'
    )
    for key, heading in _SECTIONS:
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            parts.append(f'<section><h2>{heading}</h2><p class="pre">{escape(value)}</p></section>')
    keywords = [k for k in meta.get("keywords") or [] if isinstance(k, str)]
    if keywords:
        parts.append(f"<section><h2>Keywords</h2><p>{escape(', '.join(keywords))}</p></section>")
    parts.append('<noscript><h2>Images</h2><ol class="files">')
    for image in manifest["images"]:
        links = [f'<a href="{escape(image["dicom"])}">DICOM</a>']
        for frame in image["frames"]:
            links.append(f'<a href="{escape(frame["jpeg"])}">frame {frame["number"]}</a>')
            if frame["annotated_jpeg"]:
                links.append(f'<a href="{escape(frame["annotated_jpeg"])}">annotated</a>')
        parts.append(f"<li>{' '.join(links)}</li>")
    parts.append("</ol></noscript></main>")
    parts.append(
        f'<script type="application/json" id="case-data">{_json_for_script(manifest)}</script>'
    )
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"
