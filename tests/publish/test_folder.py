from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.publish.conftest import CASE_ID, make_image, write_dicom, write_jpeg
from tftt.errors import TargetRejectedError, UnsupportedInputError
from tftt.publish.base import (
    PublicationReceipt,
    PublicationTarget,
    PublishableCase,
    PublishableFrame,
    PublishableImage,
)
from tftt.publish.folder import FolderTarget
from tftt.settings import Settings
from tftt.store import cases, db
from tftt.store.db import PublicationStatus, transact


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.data_json = ""
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("href", "src"):
            if values.get(name) and values[name] != "#":
                self.links.append(values[name] or "")
        self._in_data = tag == "script" and values.get("id") == "case-data"

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data_json += data

    def handle_endtag(self, tag: str) -> None:
        self._in_data = False


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_folder_target_satisfies_the_protocol(tmp_path: Path) -> None:
    assert isinstance(FolderTarget(tmp_path), PublicationTarget)


def test_publish_writes_dicom_jpegs_manifest_and_page(
    tmp_path: Path, sample_case: PublishableCase
) -> None:
    target = FolderTarget(tmp_path / "published")
    receipt = target.publish(sample_case)
    folder = tmp_path / "published" / CASE_ID
    assert receipt == PublicationReceipt(
        target="folder",
        case_id=CASE_ID,
        remote_ref=str(folder.resolve()),
        details={"images": 3, "frames": 5},
    )
    files = _tree(folder)
    sops = [f"2.25.3333333333333333333{n}" for n in (1, 2, 3)]
    assert sorted(files) == sorted(
        ["index.html", "manifest.json"]
        + [f"dicom/{sop}.dcm" for sop in sops]
        + [f"images/{sops[0]}-f0001.jpg", f"images/{sops[0]}-f0001-annotated.jpg"]
        + [f"images/{sops[1]}-f{n:04d}.jpg" for n in (1, 3, 5)]
        + [f"images/{sops[2]}-f0001.jpg"]
    )
    for image, sop in zip(sample_case.images, sops, strict=True):
        assert files[f"dicom/{sop}.dcm"] == image.dicom.read_bytes()
    manifest = json.loads(files["manifest.json"])
    assert manifest["format"] == "tftt-case-folder" and manifest["case_id"] == CASE_ID
    assert manifest["metadata"] == sample_case.metadata
    assert [i["sop_instance_uid"] for i in manifest["images"]] == sops  # order kept
    second = manifest["images"][1]
    assert second["number_of_frames"] == 5 and [f["number"] for f in second["frames"]] == [1, 3, 5]
    assert (second["rows"], second["columns"], second["modality"]) == (8, 8, "OT")
    assert manifest["images"][2]["series_number"] == 2
    referenced = [i["dicom"] for i in manifest["images"]] + [
        path
        for i in manifest["images"]
        for f in i["frames"]
        for path in (f["jpeg"], f["annotated_jpeg"])
        if path
    ]
    assert sorted(referenced) == sorted(
        k for k in files if k not in {"index.html", "manifest.json"}
    )


def test_index_html_is_self_contained_and_refers_to_present_files(
    tmp_path: Path, sample_case: PublishableCase
) -> None:
    target = FolderTarget(tmp_path)
    target.publish(sample_case)
    folder = tmp_path / CASE_ID
    page = (folder / "index.html").read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(page)
    assert parser.links, "the no-script list links every file"
    for link in parser.links:
        assert "://" not in link and not link.startswith("/")
        assert (folder / link).is_file(), link
    embedded = json.loads(parser.data_json)
    assert embedded == json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for heading in ("History", "Findings", "Diagnosis", "Keywords", "Abstract"):
        assert f"<h2>{heading}</h2>" in page
    assert "Pneumothorax after line placement" in page and "Dr. Teacher" in page
    assert "http" not in page.replace("http-equiv", "")  # no external assets at all


def test_untrusted_text_cannot_inject_markup(tmp_path: Path, sample_case: PublishableCase) -> None:
    evil = '</script><script>alert(1)</script><img src=x onerror=alert(2)> & "q"'
    case = sample_case.model_copy(
        update={"metadata": {**sample_case.metadata, "title": evil, "findings": evil}}
    )
    FolderTarget(tmp_path).publish(case)
    page = (tmp_path / CASE_ID / "index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page and "<img src=x" not in page
    assert page.count("<script") == 2  # the data block and the viewer
    parser = _Links()
    parser.feed(page)
    assert json.loads(parser.data_json)["metadata"]["title"] == evil


def test_republishing_replaces_the_folder_and_is_deterministic(
    tmp_path: Path, sample_case: PublishableCase
) -> None:
    target = FolderTarget(tmp_path / "out")
    target.publish(sample_case)
    first = _tree(tmp_path / "out" / CASE_ID)
    target.publish(sample_case)
    assert _tree(tmp_path / "out" / CASE_ID) == first  # same input, same bytes
    smaller = sample_case.model_copy(
        update={"images": sample_case.images[:1], "metadata": {"title": "Corrected"}}
    )
    target.publish(smaller)
    after = _tree(tmp_path / "out" / CASE_ID)
    assert sorted(k for k in after if k.startswith("dicom/")) == [
        "dicom/2.25.33333333333333333331.dcm"
    ]
    assert json.loads(after["manifest.json"])["metadata"] == {"title": "Corrected"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [CASE_ID]  # no leftovers


def test_republishing_accepts_the_previous_receipt(
    tmp_path: Path, sample_case: PublishableCase
) -> None:
    target = FolderTarget(tmp_path / "out")
    first = target.publish(sample_case)
    before = _tree(tmp_path / "out" / CASE_ID)
    assert target.publish(sample_case, first) == first
    assert _tree(tmp_path / "out" / CASE_ID) == before
    for wrong in (
        first.model_copy(update={"target": "mirc"}),
        first.model_copy(update={"case_id": "c-0000000000000001"}),
    ):
        with pytest.raises(UnsupportedInputError, match="another case or target"):
            target.publish(sample_case, wrong)
    assert _tree(tmp_path / "out" / CASE_ID) == before


def test_republishing_keeps_one_publication_record(
    tmp_path: Path, sample_case: PublishableCase
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    engine = db.make_engine(settings)
    db.init_db(engine)
    try:
        case, _ = transact(
            engine, lambda s: cases.create_or_get_case_for_study(s, "1.2.3.4.5", None, "dr", None)
        )
        target = FolderTarget.from_settings(settings)
        for _ in range(2):
            receipt = target.publish(sample_case.model_copy(update={"case_id": case.id}))
            transact(
                engine,
                lambda s, r=receipt: cases.upsert_publication(
                    s, case.id, target.name, PublicationStatus.PUBLISHED, remote_ref=r.remote_ref
                ),
            )
        publications = transact(engine, lambda s: cases.list_publications(s, case.id))
        assert len(publications) == 1
        assert publications[0].remote_ref == str(
            (tmp_path / "data" / "published" / case.id).resolve()
        )
    finally:
        db.dispose_engines()


def test_take_down_removes_the_folder_and_is_idempotent(
    tmp_path: Path, sample_case: PublishableCase
) -> None:
    root = tmp_path / "out"
    target = FolderTarget(root)
    receipt = target.publish(sample_case)
    (root / f".retired-{CASE_ID}-dead").mkdir()  # as a crash between renames would leave
    other = sample_case.model_copy(update={"case_id": "c-0000000000000001"})
    target.publish(other)
    target.take_down(CASE_ID, receipt)
    target.take_down(CASE_ID, receipt)
    assert sorted(p.name for p in root.iterdir()) == ["c-0000000000000001"]
    with pytest.raises(UnsupportedInputError):
        target.take_down("c-0000000000000001", receipt)  # another case's receipt
    with pytest.raises(UnsupportedInputError):
        target.take_down("../etc", receipt)


def test_a_failed_publication_leaves_the_previous_version(
    tmp_path: Path, sample_case: PublishableCase
) -> None:
    root = tmp_path / "out"
    target = FolderTarget(root)
    target.publish(sample_case)
    before = _tree(root / CASE_ID)
    work = tmp_path / "bad"
    not_deid = PublishableImage(
        dicom=write_dicom(work / "x.dcm", "2.25.999", deidentified=False),
        frames=(PublishableFrame(number=1, jpeg=write_jpeg(work / "x.jpg", 1)),),
    )
    broken = sample_case.model_copy(update={"images": (*sample_case.images, not_deid)})
    with pytest.raises(TargetRejectedError, match="PatientIdentityRemoved"):
        target.publish(broken)
    assert _tree(root / CASE_ID) == before
    assert sorted(p.name for p in root.iterdir()) == [CASE_ID]  # no staging folder left


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
@pytest.mark.parametrize(
    "problem", ["not-jpeg", "frame-too-high", "duplicate", "evil-uid", "not-dicom", "missing"]
)
def test_bad_inputs_are_refused_before_anything_is_published(
    tmp_path: Path, sample_case: PublishableCase, problem: str
) -> None:
    work = tmp_path / "work2"
    image = sample_case.images[0]
    if problem == "not-jpeg":
        fake = work / "fake.jpg"
        fake.parent.mkdir(parents=True)
        fake.write_bytes(b"\x89PNG not a jpeg")
        image = PublishableImage(dicom=image.dicom, frames=(PublishableFrame(number=1, jpeg=fake),))
        images = (image,)
    elif problem == "frame-too-high":
        images = (
            PublishableImage(
                dicom=image.dicom, frames=(PublishableFrame(number=2, jpeg=image.frames[0].jpeg),)
            ),
        )
    elif problem == "duplicate":
        images = (image, image)
    elif problem == "evil-uid":
        evil = write_dicom(work / "evil.dcm", "../../../tmp/evil")
        images = (PublishableImage(dicom=evil, frames=image.frames),)
    elif problem == "not-dicom":
        junk = work / "junk.dcm"
        junk.parent.mkdir(parents=True)
        junk.write_bytes(b"junk" * 100)
        images = (PublishableImage(dicom=junk, frames=image.frames),)
    else:
        images = (PublishableImage(dicom=work / "absent.dcm", frames=image.frames),)
    case = sample_case.model_copy(update={"images": images})
    with pytest.raises(UnsupportedInputError):
        FolderTarget(tmp_path / "out").publish(case)
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "tmp" / "evil.dcm").exists()


def test_publishable_case_validation(tmp_path: Path, sample_case: PublishableCase) -> None:
    from pydantic import BaseModel, ValidationError

    images = sample_case.images
    with pytest.raises(ValidationError):
        PublishableCase(case_id="../x", metadata={"title": "t"}, images=images)
    with pytest.raises(ValidationError):
        PublishableCase(case_id=CASE_ID, metadata={"history": "no title"}, images=images)
    with pytest.raises(ValidationError):
        PublishableCase(case_id=CASE_ID, metadata={"title": "t", "keywords": "a,b"}, images=images)
    with pytest.raises(ValidationError):
        PublishableCase(case_id=CASE_ID, metadata={"title": "t"}, images=())
    with pytest.raises(ValidationError):
        PublishableImage(dicom=images[1].dicom, frames=tuple(reversed(images[1].frames)))

    class Teaching(BaseModel):
        title: str
        keywords: list[str]

    built = PublishableCase(
        case_id=CASE_ID, metadata=Teaching(title="T", keywords=["k"]), images=images
    )
    assert built.metadata == {"title": "T", "keywords": ["k"]}
    assert built.keywords == ["k"] and built.text("history") is None


@pytest.mark.integration
def test_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    """Loads index.html in a real browser (Debian chromium) and reads the DOM after the
    viewer's script ran: first image shown, caption filled, buttons in the right state."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    work = tmp_path / "work"
    case = PublishableCase(
        case_id=CASE_ID,
        metadata={"title": "Cine"},
        images=(make_image(work, 1, frames=3, annotated=True), make_image(work, 2)),
    )
    FolderTarget(tmp_path / "out").publish(case)
    page = tmp_path / "out" / CASE_ID / "index.html"
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            f"--user-data-dir={tmp_path / 'profile'}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert 'id="caption">Image 1 of 2 · series 1 · instance 1 · frame 1 of 3 · OT<' in dom
    assert 'src="images/2.25.33333333333333333331-f0001.jpg"' in dom
    assert 'id="viewer"' in dom and 'id="viewer" hidden' not in dom
    assert 'id="prev-image" title="Previous image (↑)" disabled=""' in dom

    # keyboard: a copy of the page presses keys after the viewer started, logging each caption
    keys = ["ArrowRight", "ArrowRight", "ArrowRight", "ArrowLeft", "a", "ArrowDown", "Home"]
    probe = (
        "<script>var log=[];function cap(){log.push(document.getElementById('caption')"
        ".textContent+' | '+document.getElementById('image').getAttribute('src'));}"
        f"{json.dumps(keys)}.forEach(function(k){{document.dispatchEvent("
        "new KeyboardEvent('keydown',{key:k}));cap();});"
        "var pre=document.createElement('pre');pre.id='log';pre.textContent=log.join('\\n');"
        "document.body.appendChild(pre);</script></body>"
    )
    probe_page = page.with_name("probe.html")
    probe_page.write_text(page.read_text(encoding="utf-8").replace("</body>", probe))
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            f"--user-data-dir={tmp_path / 'profile'}",
            probe_page.as_uri() + "#image=1&frame=1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    log = dom.split('<pre id="log">')[1].split("</pre>")[0].split("\n")
    sop1, sop2 = "2.25.33333333333333333331", "2.25.33333333333333333332"
    assert log == [
        f"Image 1 of 2 · series 1 · instance 1 · frame 2 of 3 · OT | images/{sop1}-f0002.jpg",
        f"Image 1 of 2 · series 1 · instance 1 · frame 3 of 3 · OT | images/{sop1}-f0003.jpg",
        f"Image 2 of 2 · series 1 · instance 2 · OT | images/{sop2}-f0001.jpg",
        f"Image 1 of 2 · series 1 · instance 1 · frame 3 of 3 · OT | images/{sop1}-f0003.jpg",
        f"Image 1 of 2 · series 1 · instance 1 · frame 3 of 3 · OT · annotated | "
        f"images/{sop1}-f0003-annotated.jpg",
        f"Image 2 of 2 · series 1 · instance 2 · OT | images/{sop2}-f0001.jpg",
        f"Image 1 of 2 · series 1 · instance 1 · frame 1 of 3 · OT · annotated | "
        f"images/{sop1}-f0001-annotated.jpg",
    ]
    deep = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            f"--user-data-dir={tmp_path / 'profile'}",
            page.as_uri() + "#image=1&frame=3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "frame 3 of 3" in deep
