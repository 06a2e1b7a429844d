from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import Path
from xml.etree import ElementTree as ET

import pydicom
import pytest
from PIL import Image

from tests.publish.conftest import CASE_ID, write_dicom, write_jpeg
from tftt.errors import TargetRejectedError, UnsupportedInputError
from tftt.publish.base import PublishableCase, PublishableFrame, PublishableImage
from tftt.publish.mircdoc import (
    DOCUMENT_NAME,
    ICON_SIZE,
    make_icon,
    submission_bytes,
    write_submission,
)
from tftt.synth.canaries import canary_strings, make_identity

IDENTITY = make_identity(7)
CANARIES = canary_strings(IDENTITY).second_pass()
HOSTILE = '<b>&amp; "quoted" </section><![CDATA[x]]> & < > \x00\x1b\ufffe end'
_NAME = re.compile(r"^img-\d{3}(-\d{2}(-icon|-ann)?\.jpg|\.dcm)$")


def _set(path: Path, **values: object) -> Path:
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def _canary_case(tmp_path: Path) -> PublishableCase:
    """Second-pass-looking files stored under names and folders that hold canaries (as a
    careless workspace might name them), given in shuffled order, with canaries in metadata
    keys that must not be copied."""
    base = tmp_path / IDENTITY.patient_name / IDENTITY.accession_number
    images = []
    # (n, series, instance, frames, key frames, annotated, modality), not in reading order
    plan = [
        (3, 2, 1, 1, [1], False, "MR"),
        (2, 1, 7, 5, [1, 3, 5], False, "CT"),
        (1, 1, 2, 1, [1], True, "CT"),
    ]
    for n, series, instance, frames, keys, annotated, modality in plan:
        folder = base / f"{IDENTITY.patient_id}-{n}"
        dicom = write_dicom(
            folder / f"{IDENTITY.uid(1, n)}.dcm",
            f"2.25.4444444444444444444{n}",
            series=series,
            instance=instance,
            frames=frames,
        )
        _set(dicom, Modality=modality)
        published = []
        for number in keys:
            stem = f"{IDENTITY.family_name}-{IDENTITY.uid(2, n, number)}"
            jpeg = write_jpeg(folder / f"{stem}.jpg", 20 * number + n)
            note = write_jpeg(folder / f"{stem}-note.jpg", 250) if annotated else None
            published.append(PublishableFrame(number=number, jpeg=jpeg, annotated_jpeg=note))
        images.append(PublishableImage(dicom=dicom, frames=tuple(published)))
    return PublishableCase(
        case_id=CASE_ID,
        metadata={
            "title": f"Title {HOSTILE}",
            "history": f"First line {HOSTILE}\n\nSecond line",
            "findings": "Apical pleural line.",
            "diagnosis": "Pneumothorax & <tension>",
            "keywords": ["chest", 'a "b" <c>'],
            "author": "Dr. O'Teacher & Co",
            "abstract": "A classic case.",
            "source_patient": IDENTITY.patient_name,
            IDENTITY.accession_number: IDENTITY.patient_id,
        },
        images=tuple(images),
    )


def _entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {info.filename: archive.read(info) for info in archive.infolist()}


def test_zip_and_document_follow_the_documented_structure(tmp_path: Path) -> None:
    case = _canary_case(tmp_path)
    out = io.BytesIO()
    submission = write_submission(case, out, owner="teacher", public=True)
    files = _entries(out.getvalue())
    assert list(files) == list(submission.names) and submission.names[0] == DOCUMENT_NAME
    assert files[DOCUMENT_NAME] == submission.document
    assert all(_NAME.fullmatch(name) for name in list(files)[1:]), list(files)
    # images in order of series, instance and frame, whatever the input order
    assert list(files)[1:] == [
        "img-001-01.jpg", "img-001-01-icon.jpg", "img-001-01-ann.jpg", "img-001.dcm",
        "img-002-01.jpg", "img-002-01-icon.jpg", "img-002-03.jpg", "img-002-03-icon.jpg",
        "img-002-05.jpg", "img-002-05-icon.jpg", "img-002.dcm",
        "img-003-01.jpg", "img-003-01-icon.jpg", "img-003.dcm",
    ]  # fmt: skip

    root = ET.fromstring(files[DOCUMENT_NAME])  # well-formed
    assert files[DOCUMENT_NAME].startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert root.tag == "MIRCdocument" and root.get("display") == "mstf"
    # every referenced file is in the zip, and every file is referenced
    referenced = {node.get("src") for node in root.iter() if node.get("src") is not None}
    assert referenced == set(files) - {DOCUMENT_NAME}
    images = root.findall("image-section/image")
    assert [i.findtext("order-by") for i in images] == [""] * 5
    order = [(o.get("series"), o.get("instance"), o.get("frame")) for o in root.iter("order-by")]
    assert order == [("1", "2", "1"), ("1", "7", "1"), ("1", "7", "3"), ("1", "7", "5"), ("2", "1", "1")]
    for image in images:
        roles = {alt.get("role"): alt.get("src") for alt in image.findall("alternative-image")}
        assert roles["icon"] == image.get("src", "").replace(".jpg", "-icon.jpg")
        assert roles["original-format"].endswith(".dcm")
        assert (image.get("w"), image.get("h")) == ("16", "16")
    first = {alt.get("role"): alt for alt in images[0].findall("alternative-image")}
    assert first["annotation"].get("type") == "image"
    assert first["annotation"].get("src") == "img-001-01-ann.jpg"
    assert all(alt.get("role") != "annotation" for i in images[1:] for alt in i.findall("alternative-image"))
    # sections and the top-level index fields
    sections = {s.get("heading"): s for s in root.findall("section")}
    assert list(sections) == ["History", "Findings", "Diagnosis"]
    assert [p.text for p in sections["History"].findall("p")][1] == "Second line"
    assert [child.tag for child in root] == [
        "title", "author", "abstract", "keywords", "section", "image-section", "section",
        "section", "history", "findings", "diagnosis", "modality", "document-type",
        "authorization", "publication-date",
    ]  # fmt: skip
    for tag in ("history", "findings", "diagnosis", "keywords", "modality", "title"):
        assert (root.findtext(tag) or "").strip(), tag
    assert root.findtext("modality") == "CT, MR"
    assert root.findtext("findings") == "Apical pleural line."
    assert root.findtext("author/name") == "Dr. O'Teacher & Co"
    assert root.findtext("abstract/p") == "A classic case."
    assert root.findtext("document-type") == "Radiologic Teaching File"
    auth = root.find("authorization")
    assert auth is not None
    assert [(c.tag, c.text) for c in auth] == [
        ("owner", "teacher"),
        ("read", "*"),
        ("update", "[teacher]"),
        ("export", None),
    ]
    # DICOM copied byte for byte, JPEGs as given, icons made small
    by_sop = {pydicom.dcmread(i.dicom).SeriesNumber * 100 + pydicom.dcmread(i.dicom).InstanceNumber: i
              for i in case.images}  # fmt: skip
    for name, key in (("img-001.dcm", 102), ("img-002.dcm", 107), ("img-003.dcm", 201)):
        assert files[name] == by_sop[key].dicom.read_bytes()
        assert pydicom.dcmread(io.BytesIO(files[name])).PatientIdentityRemoved == "YES"
    assert files["img-002-03.jpg"] == by_sop[107].frames[1].jpeg.read_bytes()
    assert files["img-001-01-ann.jpg"] == by_sop[102].frames[0].annotated_jpeg.read_bytes()  # type: ignore[union-attr]
    with Image.open(io.BytesIO(files["img-001-01-icon.jpg"])) as icon:
        assert icon.format == "JPEG" and max(icon.size) <= ICON_SIZE
    assert submission.modalities == ("CT", "MR") and submission.frame_count == 5


def test_no_canary_anywhere_in_the_zip(tmp_path: Path) -> None:
    case = _canary_case(tmp_path)
    data = submission_bytes(case, owner="teacher", public=False)
    files = _entries(data)
    haystacks = [data, *files.values(), *(name.encode() for name in files)]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        haystacks.append(archive.comment)
        haystacks += [info.extra for info in archive.infolist()]
    # the planted values are really in the inputs (paths and metadata), so the check can fail
    assert IDENTITY.patient_name in str(case.images[0].dicom)
    assert IDENTITY.accession_number in case.metadata
    for canary in CANARIES:
        needle = canary.encode()
        for haystack in haystacks:
            assert needle not in haystack, canary
            assert needle.lower() not in haystack.lower(), canary
    # deflated entries were checked decompressed above; the raw zip holds no stored copy either
    assert zlib.compress(IDENTITY.patient_name.encode()) not in data


def test_untrusted_text_is_escaped_and_round_trips(tmp_path: Path) -> None:
    case = _canary_case(tmp_path)
    document = _entries(submission_bytes(case, owner="teacher", public=True))[DOCUMENT_NAME]
    root = ET.fromstring(document)
    expected = HOSTILE.replace("\x00", "").replace("\x1b", "").replace("\ufffe", "")
    assert root.findtext("title") == f"Title {expected}"
    assert root.findtext("section[@heading='History']/p") == f"First line {expected}"
    assert root.findtext("history") == f"First line {expected} Second line"
    assert root.findtext("diagnosis") == "Pneumothorax & <tension>"
    assert root.findtext("keywords") == 'chest, a "b" <c>'
    text = document.decode("utf-8")
    assert "<b>" not in text and "</section><![CDATA" not in text and "<tension>" not in text
    assert "&lt;b&gt;&amp;amp;" in text and "&lt;tension&gt;" in text
    assert len(root.findall("section")) == 3  # the text did not open or close any element


def test_private_case_has_an_empty_read_list(tmp_path: Path, sample_case: PublishableCase) -> None:
    root = ET.fromstring(_entries(submission_bytes(sample_case, owner="u1", public=False))[DOCUMENT_NAME])
    read = root.find("authorization/read")
    assert read is not None and not (read.text or "").strip()  # nobody but the owner and admins
    assert root.findtext("authorization/owner") == "u1"


def test_same_input_gives_the_same_bytes(tmp_path: Path, sample_case: PublishableCase) -> None:
    first = submission_bytes(sample_case, owner="teacher", public=True)
    assert submission_bytes(sample_case, owner="teacher", public=True) == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert submission_bytes(sample_case, owner="teacher", public=False) != first


def test_optional_fields_are_left_out_and_names_widen(tmp_path: Path) -> None:
    work = tmp_path / "w"
    case = PublishableCase(
        case_id=CASE_ID,
        metadata={"title": "Only a title"},
        images=(
            PublishableImage(
                dicom=write_dicom(work / "cine.dcm", "2.25.5", frames=120),
                frames=tuple(
                    PublishableFrame(number=n, jpeg=write_jpeg(work / f"{n}.jpg", n)) for n in (7, 101)
                ),
            ),
        ),
    )
    data = submission_bytes(case, owner="teacher", public=True)
    files = _entries(data)
    assert list(files)[1:] == [
        "img-001-007.jpg", "img-001-007-icon.jpg", "img-001-101.jpg", "img-001-101-icon.jpg",
        "img-001.dcm",
    ]  # fmt: skip
    root = ET.fromstring(files[DOCUMENT_NAME])
    assert [c.tag for c in root] == [
        "title",
        "image-section",
        "modality",
        "document-type",
        "authorization",
        "publication-date",
    ]


def test_icon_carries_no_metadata_of_the_source(tmp_path: Path) -> None:
    source = io.BytesIO()
    Image.new("RGB", (300, 150), (10, 20, 30)).save(
        source, format="JPEG", comment=IDENTITY.patient_name.encode()
    )
    assert IDENTITY.patient_name.encode() in source.getvalue()
    icon = make_icon(source.getvalue())
    assert IDENTITY.patient_name.encode() not in icon
    with Image.open(io.BytesIO(icon)) as image:
        assert image.size == (ICON_SIZE, ICON_SIZE // 2) and "comment" not in image.info
    with pytest.raises(UnsupportedInputError):
        make_icon(b"\xff\xd8\xff not really")


def test_refuses_dicom_not_marked_as_deidentified(tmp_path: Path, sample_case: PublishableCase) -> None:
    work = tmp_path / "bad"
    for value in (None, "NO"):
        dicom = write_dicom(work / "x.dcm", "2.25.999", deidentified=False)
        if value is not None:
            _set(dicom, PatientIdentityRemoved=value)
        image = PublishableImage(
            dicom=dicom, frames=(PublishableFrame(number=1, jpeg=write_jpeg(work / "x.jpg", 1)),)
        )
        case = sample_case.model_copy(update={"images": (*sample_case.images, image)})
        out = io.BytesIO()
        with pytest.raises(TargetRejectedError, match="PatientIdentityRemoved") as info:
            write_submission(case, out, owner="teacher", public=True)
        assert info.value.code == "not-deidentified"
        assert out.getvalue() == b""  # nothing written before every input was checked


@pytest.mark.parametrize(
    "problem", ["not-jpeg", "frame-too-high", "duplicate", "not-dicom", "missing", "bad-owner"]
)
def test_bad_inputs_are_refused(tmp_path: Path, sample_case: PublishableCase, problem: str) -> None:
    work = tmp_path / "work2"
    work.mkdir()
    image = sample_case.images[0]
    owner = "teacher"
    if problem == "not-jpeg":
        fake = work / "fake.jpg"
        fake.write_bytes(b"\x89PNG not a jpeg")
        images = (PublishableImage(dicom=image.dicom, frames=(PublishableFrame(number=1, jpeg=fake),)),)
    elif problem == "frame-too-high":
        frame = PublishableFrame(number=2, jpeg=image.frames[0].jpeg)
        images = (PublishableImage(dicom=image.dicom, frames=(frame,)),)
    elif problem == "duplicate":
        images = (image, image)
    elif problem == "not-dicom":
        junk = work / "junk.dcm"
        junk.write_bytes(b"junk" * 100)
        images = (PublishableImage(dicom=junk, frames=image.frames),)
    elif problem == "missing":
        images = (PublishableImage(dicom=work / "absent.dcm", frames=image.frames),)
    else:
        images = sample_case.images
        owner = "bad owner</owner>"
    case = sample_case.model_copy(update={"images": images})
    with pytest.raises(UnsupportedInputError):
        write_submission(case, io.BytesIO(), owner=owner, public=True)
