"""The MIRCdocument of a case and the zip the RSNA MIRC Teaching File System accepts.

The Submit Service (``POST /submit/{ssid}``, see ``notes/mirc-tfs.md``) takes one zip holding one
``*.xml`` whose root is ``<MIRCdocument>`` and every file it references, unpacked flat. This
module builds both from a :class:`~tftt.publish.base.PublishableCase`; it does no network I/O
and writes only to the binary stream it is given.

Layout of the zip (``I`` = image number in order of series and instance, ``F`` = the frame
number within that image; widths grow with the case, at least 3 and 2 digits)::

    MIRCdocument.xml
    img-III-FF.jpg        the clean JPEG of a published frame (a cine's key frames)
    img-III-FF-icon.jpg   its icon, made here (at most ICON_SIZE pixels on the longer side)
    img-III-FF-ann.jpg    the reviewer's annotated JPEG, if any (role="annotation")
    img-III.dcm           the second-pass DICOM object, as given (role="original-format")

No name is taken from a file name, a UID or the teaching text. Teaching text is untrusted: it
only ever becomes XML character data through :mod:`xml.etree.ElementTree` (escaped), after
characters XML 1.0 cannot carry are dropped. Metadata keys other than the teaching fields are
not copied. The TFS stores DICOM exactly as uploaded, so every DICOM file must say
PatientIdentityRemoved = YES (only second-pass, verified files may be put into a case).

The same case, owner and visibility give byte-identical zips (fixed entry times, fixed order).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from xml.etree import ElementTree as ET

from tftt.errors import TargetRejectedError, UnsupportedInputError
from tftt.publish.base import PublishableCase, PublishableFrame

DOCUMENT_NAME = "MIRCdocument.xml"
DOCUMENT_TYPE = "Radiologic Teaching File"
ICON_SIZE = 64
IMAGE_PANE_WIDTH = 700
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_DEFLATE_LEVEL = 1  # measured on CT-like data: 4-5x faster than level 6, 2% larger
_JPEG_MAGIC = b"\xff\xd8\xff"
# Characters XML 1.0 cannot carry (C0 controls but tab/newline/return, surrogates, U+FFFE/F).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class MircFrame:
    """One published frame: its file names in the zip and the clean JPEG's size."""

    number: int
    jpeg: str
    icon: str
    annotation: str | None
    width: int
    height: int


@dataclass(frozen=True)
class MircImage:
    """One DICOM object in the zip, with what was read from its header."""

    dicom: str
    series_number: int | None
    instance_number: int | None
    modality: str | None
    frames: tuple[MircFrame, ...]


@dataclass(frozen=True)
class MircSubmission:
    """What :func:`write_submission` put into the zip."""

    document: bytes
    names: tuple[str, ...]
    images: tuple[MircImage, ...]
    modalities: tuple[str, ...]

    @property
    def frame_count(self) -> int:
        return sum(len(image.frames) for image in self.images)


@dataclass(frozen=True)
class _Header:
    sop_instance_uid: str
    series_number: int | None
    instance_number: int | None
    modality: str | None
    number_of_frames: int


@dataclass(frozen=True)
class _Source:
    """An input image with its checked header (its bytes are read again when zipped)."""

    position: int
    dicom: Path
    header: _Header
    frames: tuple[PublishableFrame, ...]


# --------------------------------------------------------------------------------------------
# Reading the inputs


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        raise UnsupportedInputError(
            "a file to publish is missing or unreadable", code="missing-file"
        ) from None


def _read_dicom(data: bytes) -> _Header:
    """The header values the document needs.

    Raises:
        UnsupportedInputError: not readable DICOM, or no SOP Instance UID.
        TargetRejectedError: PatientIdentityRemoved is not YES.
    """
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, ValueError, EOFError, OSError, KeyError, TypeError) as exc:
        raise UnsupportedInputError(
            f"a file to publish is not readable DICOM ({type(exc).__name__})", code="bad-dicom"
        ) from None
    sop = str(ds.get("SOPInstanceUID", "") or "")
    if not sop:
        raise UnsupportedInputError("a file to publish has no SOP Instance UID", code="bad-uid")
    if str(ds.get("PatientIdentityRemoved", "") or "").strip().upper() != "YES":
        raise TargetRejectedError(
            "refusing to put a DICOM file into a MIRC zip: PatientIdentityRemoved is not YES",
            code="not-deidentified",
        )

    def number(keyword: str) -> int | None:
        value = ds.get(keyword)
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    modality = str(ds.get("Modality", "") or "").strip().upper()
    return _Header(
        sop_instance_uid=sop,
        series_number=number("SeriesNumber"),
        instance_number=number("InstanceNumber"),
        modality=modality if re.fullmatch(r"[A-Z0-9_]{1,16}", modality) else None,
        number_of_frames=number("NumberOfFrames") or 1,
    )


def _jpeg_bytes(path: Path) -> bytes:
    """The bytes of a JPEG file.

    Raises:
        UnsupportedInputError: missing, or not a JPEG.
    """
    data = _read_bytes(path)
    if not data.startswith(_JPEG_MAGIC):
        raise UnsupportedInputError("an image to publish is not a JPEG file", code="bad-jpeg")
    return data


def _jpeg_size(path: Path) -> tuple[int, int]:
    """Width and height of a JPEG file, from its header.

    Raises:
        UnsupportedInputError: missing, not a JPEG, or not readable.
    """
    from PIL import Image, UnidentifiedImageError

    data = _jpeg_bytes(path)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG":
                raise ValueError("not a JPEG")
            return image.size
    except (UnidentifiedImageError, OSError, ValueError):
        raise UnsupportedInputError("an image to publish is not a readable JPEG", code="bad-jpeg") from None


def make_icon(jpeg: bytes, size: int = ICON_SIZE) -> bytes:
    """A small JPEG thumbnail of ``jpeg`` (longer side at most ``size``), with no metadata
    carried over from the source (no comment, EXIF or ICC profile).

    Raises:
        UnsupportedInputError: ``jpeg`` cannot be decoded.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(jpeg)) as source:
            source.draft(None, (size, size))  # let the JPEG decoder scale down on the way
            pixels = source.convert("L" if source.mode in ("L", "1") else "RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        raise UnsupportedInputError("an image to publish is not a readable JPEG", code="bad-jpeg") from None
    pixels.thumbnail((size, size), Image.Resampling.LANCZOS)
    clean = Image.new(pixels.mode, pixels.size)
    clean.paste(pixels)
    out = io.BytesIO()
    clean.save(out, format="JPEG", quality=85, optimize=False)
    return out.getvalue()


def _sources(case: PublishableCase) -> list[_Source]:
    """The case's images with their checked headers, in order of series, instance (then input
    order). Each JPEG is checked to be readable too.

    Raises:
        UnsupportedInputError / TargetRejectedError: see :func:`write_submission`.
    """
    sources: list[_Source] = []
    seen: set[str] = set()
    for position, image in enumerate(case.images):
        header = _read_dicom(_read_bytes(image.dicom))
        if header.sop_instance_uid in seen:
            raise UnsupportedInputError(
                f"image {position + 1} repeats the DICOM object of an earlier image",
                code="duplicate-uid",
            )
        seen.add(header.sop_instance_uid)
        if image.frames[-1].number > header.number_of_frames:
            raise UnsupportedInputError(
                f"image {position + 1}: frame {image.frames[-1].number} of {header.number_of_frames}",
                code="bad-frame",
            )
        sources.append(_Source(position=position, dicom=image.dicom, header=header, frames=image.frames))

    def order(source: _Source) -> tuple[bool, int, bool, int, int]:
        series, instance = source.header.series_number, source.header.instance_number
        return (series is None, series or 0, instance is None, instance or 0, source.position)

    return sorted(sources, key=order)


def _plan(sources: Sequence[_Source]) -> list[MircImage]:
    """File names (positional, never from the inputs) and JPEG sizes for every image.

    Raises:
        UnsupportedInputError: a JPEG is missing or unreadable.
    """
    image_width = max(3, len(str(len(sources))))
    frame_width = max(2, len(str(max(f.number for s in sources for f in s.frames))))
    images: list[MircImage] = []
    for index, source in enumerate(sources, start=1):
        stem = f"img-{index:0{image_width}d}"
        frames = []
        for frame in source.frames:
            frame_stem = f"{stem}-{frame.number:0{frame_width}d}"
            width, height = _jpeg_size(frame.jpeg)
            annotation = None
            if frame.annotated_jpeg is not None:
                _jpeg_size(frame.annotated_jpeg)
                annotation = f"{frame_stem}-ann.jpg"
            frames.append(
                MircFrame(
                    number=frame.number,
                    jpeg=f"{frame_stem}.jpg",
                    icon=f"{frame_stem}-icon.jpg",
                    annotation=annotation,
                    width=width,
                    height=height,
                )
            )
        images.append(
            MircImage(
                dicom=f"{stem}.dcm",
                series_number=source.header.series_number,
                instance_number=source.header.instance_number,
                modality=source.header.modality,
                frames=tuple(frames),
            )
        )
    return images


# --------------------------------------------------------------------------------------------
# The document


def clean_text(value: str) -> str:
    """``value`` without the characters XML 1.0 cannot carry, with ``\\r\\n`` made ``\\n``."""
    return _NOT_XML.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def _paragraphs(value: str) -> list[str]:
    return [line.strip() for line in clean_text(value).split("\n") if line.strip()]


def _element(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def _paragraph_block(parent: ET.Element, tag: str, value: str, **attrs: str) -> None:
    block = _element(parent, tag, **attrs)
    for line in _paragraphs(value):
        _element(block, "p", line)


def build_document(
    case: PublishableCase,
    images: Sequence[MircImage],
    *,
    owner: str,
    public: bool,
) -> bytes:
    """The MIRCdocument XML (UTF-8, with declaration) for ``case`` and its planned ``images``.

    ``owner`` is the TFS user who submits (the server sets it anyway); ``public`` gives
    ``<read>*</read>``, else ``<read/>`` (only the owner and administrators may read).
    Updates and exports are left to the owner (``<update>[owner]</update>``, ``<export/>``).

    Raises:
        UnsupportedInputError: ``owner`` is empty or not a plain user name.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", owner):
        raise UnsupportedInputError("the MIRC owner is not a plain user name", code="bad-owner")
    title = case.text("title") or ""
    history = case.text("history")
    findings = case.text("findings")
    diagnosis = case.text("diagnosis")
    abstract = case.text("abstract")
    author = case.text("author")
    keywords = [clean_text(k).strip() for k in case.keywords if clean_text(k).strip()]
    modalities = _modalities(images)

    root = ET.Element("MIRCdocument", {"display": "mstf", "first-tab": "2"})
    _element(root, "title", " ".join(_paragraphs(title)))
    if author:
        _element(_element(root, "author"), "name", " ".join(_paragraphs(author)))
    if abstract:
        _paragraph_block(root, "abstract", abstract)
    if keywords:
        _element(root, "keywords", ", ".join(keywords))
    if history:
        _paragraph_block(root, "section", history, heading="History")
    section = _element(
        root,
        "image-section",
        heading="Images",
        **{"image-pane-width": str(IMAGE_PANE_WIDTH), "icons": "yes"},
    )
    for image in images:
        for frame in image.frames:
            node = _element(section, "image", src=frame.jpeg, w=str(frame.width), h=str(frame.height))
            _element(node, "alternative-image", role="icon", src=frame.icon)
            if frame.annotation is not None:
                _element(
                    node,
                    "alternative-image",
                    role="annotation",
                    type="image",
                    src=frame.annotation,
                )
            _element(node, "alternative-image", role="original-format", src=image.dicom)
            _element(
                node,
                "order-by",
                series=str(image.series_number or 0),
                instance=str(image.instance_number or 0),
                frame=str(frame.number),
            )
    if findings:
        _paragraph_block(root, "section", findings, heading="Findings")
    if diagnosis:
        _paragraph_block(root, "section", diagnosis, heading="Diagnosis")
    # the fields the TFS search index reads (not the <section> text)
    for tag, value in (("history", history), ("findings", findings), ("diagnosis", diagnosis)):
        if value:
            _element(root, tag, " ".join(_paragraphs(value)))
    if modalities:
        _element(root, "modality", ", ".join(modalities))
    _element(root, "document-type", DOCUMENT_TYPE)
    authorization = _element(root, "authorization")
    _element(authorization, "owner", owner)
    _element(authorization, "read", "*" if public else None)
    _element(authorization, "update", f"[{owner}]")
    _element(authorization, "export")
    _element(root, "publication-date")
    ET.indent(root, space=" ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _modalities(images: Sequence[MircImage]) -> tuple[str, ...]:
    seen: list[str] = []
    for image in images:
        if image.modality and image.modality not in seen:
            seen.append(image.modality)
    return tuple(seen)


# --------------------------------------------------------------------------------------------
# The zip


def _zip_info(name: str, compress: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = compress
    info.create_system = 3
    info.external_attr = 0o644 << 16
    return info


def write_submission(
    case: PublishableCase,
    out: IO[bytes],
    *,
    owner: str,
    public: bool,
) -> MircSubmission:
    """Write the Submit Service zip of ``case`` to ``out`` (a writable, seekable binary file).

    Every DICOM header and JPEG is checked before the first byte is written; then the files are
    read again one at a time (so a case's size is not held in memory), and each DICOM file's
    bytes are checked again as they go into the zip. After an error ``out`` may hold a partial
    zip: discard it.

    Raises:
        TargetRejectedError: a DICOM file does not say PatientIdentityRemoved = YES
            (code ``not-deidentified``).
        UnsupportedInputError: a DICOM or JPEG file is missing, unreadable or malformed, two
            images hold the same DICOM object, a frame number exceeds the object's frames, a
            file changed while the zip was written, or ``owner`` is not a plain user name.
    """
    sources = _sources(case)
    images = _plan(sources)
    document = build_document(case, images, owner=owner, public=public)
    names: list[str] = []
    with zipfile.ZipFile(out, mode="w", allowZip64=True) as archive:

        def add(name: str, data: bytes, compress: int) -> None:
            archive.writestr(_zip_info(name, compress), data, compresslevel=_DEFLATE_LEVEL)
            names.append(name)

        add(DOCUMENT_NAME, document, zipfile.ZIP_DEFLATED)
        for source, image in zip(sources, images, strict=True):
            for given, planned in zip(source.frames, image.frames, strict=True):
                jpeg = _jpeg_bytes(given.jpeg)
                add(planned.jpeg, jpeg, zipfile.ZIP_STORED)
                add(planned.icon, make_icon(jpeg), zipfile.ZIP_STORED)
                if planned.annotation is not None and given.annotated_jpeg is not None:
                    add(planned.annotation, _jpeg_bytes(given.annotated_jpeg), zipfile.ZIP_STORED)
            data = _read_bytes(source.dicom)
            if _read_dicom(data) != source.header:  # the bytes sent are the bytes checked
                raise UnsupportedInputError(
                    f"{image.dicom} changed while the MIRC zip was written", code="changed-input"
                )
            add(image.dicom, data, zipfile.ZIP_DEFLATED)
            del data
    if len(set(names)) != len(names):  # cannot happen: names are positional
        raise UnsupportedInputError("two files in the MIRC zip share a name", code="bad-name")
    return MircSubmission(
        document=document, names=tuple(names), images=tuple(images), modalities=_modalities(images)
    )


def submission_bytes(case: PublishableCase, *, owner: str, public: bool) -> bytes:
    """The zip of :func:`write_submission`, in memory (for small cases and tests).

    Raises:
        as :func:`write_submission`.
    """
    out = io.BytesIO()
    write_submission(case, out, owner=owner, public=public)
    return out.getvalue()
