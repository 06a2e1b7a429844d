"""One file through TFTT's headless path: parse, first pass, pixel stage, second pass, verify.

Pure: bytes in, an :class:`Outcome` out (the output bytes and name, or a quarantine reason).
Every failure becomes a quarantine outcome with a stage and a reason code; nothing raises out
of :func:`process_bytes` except programming errors. The caller decides whether to keep the
input bytes (e.g. to quarantine them).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import UID

from tftt.deid.dataset_reader import SequenceBytes, read_explicit_file
from tftt.deid.engine import CompiledProfile, DeidContext, DeidReport, deidentify, serialize, syntax_of
from tftt.deid.integrity import check_integrity
from tftt.deid.memo import Memo
from tftt.deid.rules import ConfidentialityTable, KeepList, Profile, SafePrivateTags, Vocabulary
from tftt.deid.verify import Identifiers, VerificationReport, harvest_identifiers, verify_output
from tftt.errors import ResidualPHIError, TfttError, UnsupportedInputError


class Stage(StrEnum):
    PARSE = "parse"
    FIRST_PASS = "first-pass"
    PIXELS = "pixels"
    SECOND_PASS = "second-pass"
    VERIFY = "verify"


@dataclass(frozen=True)
class PixelStageResult:
    """What the pixel stage did to a first-pass dataset."""

    dataset: Dataset
    cleaned: bool


#: The pixel stage: takes a first-pass dataset, returns it cleaned (or unchanged if it carries
#: no risk), or raises a TfttError (e.g. RedactionError for text it could not remove).
PixelStage = Callable[[Dataset], PixelStageResult]


@dataclass(frozen=True)
class VerificationRules:
    """The verifier's own reading of what the second pass may leave in an output.

    ``profile`` is the second-pass profile as the settings apply it (their date policy, private
    tag policy and the site's overrides): the verifier must judge the output by the rules the
    engine was told to follow, or every file of a site that shifts dates, keeps safe private
    tags or overrides an attribute would be quarantined.
    """

    profile: Profile
    table: ConfidentialityTable
    keep_list: KeepList
    safe_private: SafePrivateTags | None
    vocabulary: Vocabulary | None = None

    def harvest(self, original: Dataset, memo: Memo | None = None,
                sequence_bytes: SequenceBytes | None = None) -> Identifiers:
        """The identifiers of ``original`` that an output must not contain."""
        return harvest_identifiers(original, self.profile, self.table, keep_list=self.keep_list,
                                   vocabulary=self.vocabulary, safe_private=self.safe_private,
                                   memo=memo, sequence_bytes=sequence_bytes)  # fmt: skip

    def verify(self, identifiers: Identifiers, output: bytes, file_name: str,
               memo: Memo | None = None) -> VerificationReport:
        """Check one output (see :func:`~tftt.deid.verify.verify_output`).

        Raises:
            ResidualPHIError: anything was found.
        """
        return verify_output(identifiers, output, file_name, self.profile, self.table, self.keep_list,
                             safe_private=self.safe_private, memo=memo)


@dataclass(frozen=True)
class Memos:
    """One memo per stage, for the files of one batch in one process."""

    engine: Memo = field(default_factory=Memo)  # both passes: the rules' token tells them apart
    harvest: Memo = field(default_factory=Memo)
    verify: Memo = field(default_factory=Memo)


@dataclass(frozen=True)
class Pipeline:
    """The rules, key and stages every file goes through.

    ``memos`` let the stages remember per-element results from one file to the next (see
    :mod:`tftt.deid.memo`); without them every element is judged afresh, with the same
    outcome. A pipeline with memos serves one process (or thread) at a time.
    """

    first: CompiledProfile
    second: CompiledProfile
    key: bytes
    verification: VerificationRules
    pixel_stage: PixelStage
    memos: Memos | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    stage: Stage
    code: str = "ok"
    message: str = ""
    file_name: str | None = None
    output: bytes | None = None
    report: DeidReport | None = None
    findings: tuple[str, ...] = ()
    pixels_cleaned: bool = False


def parse(data: bytes) -> Dataset:
    """Read DICOM with or without the preamble.

    Explicit VR Little Endian files are read by :mod:`~tftt.deid.dataset_reader` into the same
    objects as ``dcmread`` and :func:`_read_sequences` give, at a fraction of the cost; any
    other file, or one that reader is not certain about, is read by pydicom.

    Raises:
        UnsupportedInputError: not DICOM, or truncated.
    """
    return parse_with_sequence_bytes(data)[0]


def parse_with_sequence_bytes(data: bytes) -> tuple[Dataset, SequenceBytes | None]:
    """:func:`parse`, and the bytes of the sequences read (see
    :attr:`~tftt.deid.dataset_reader.ExplicitFile.sequence_bytes`) when this package's reader
    read the file; ``None`` when pydicom did."""
    if len(data) < 8:
        raise UnsupportedInputError("file is too short to be DICOM", code="not-dicom")
    fast = read_explicit_file(data)
    try:
        if fast is not None:
            ds = _checked(fast.dataset)
            if fast.read_sequences():
                return ds, fast.sequence_bytes
            # A sequence it does not read: the whole file is read again, by pydicom.
        ds = _checked(pydicom.dcmread(io.BytesIO(data), force=True))
        _read_sequences(ds)
    except TfttError:
        raise
    except Exception as exc:
        raise UnsupportedInputError(
            f"file does not parse as DICOM ({type(exc).__name__})", code="not-dicom"
        ) from None
    return ds, None


def _checked(ds: FileDataset) -> FileDataset:
    """``ds`` as read, once checked to be a whole composite object (see :func:`parse`)."""
    # Touch every top-level element so a truncated or malformed file fails here, not later.
    for _ in ds.keys():
        pass
    if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
        raise UnsupportedInputError("file is not a DICOM composite object", code="not-dicom")
    syntax = syntax_of(ds)
    if not getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None):
        # No file meta (no preamble either): record the encoding pydicom read.
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = UID(syntax)
    check_integrity(ds, syntax)
    return ds


def _read_sequences(ds: Dataset) -> None:
    """Read every explicit-VR sequence once, at every depth, and keep it read.

    pydicom leaves a sequence as raw bytes until it is used, and neither the engine nor the
    harvest store what they read (they must not change a dataset they are given), so each of them
    parsed every nested item again. The dataset is this module's own, fresh from the bytes, so
    reading its sequences here is no change to anyone's input. A sequence that does not parse
    stays raw, for the engine (which removes it) and the harvest (which reports it) to handle as
    before.
    """
    for tag, raw in list(ds._dict.items()):
        if type(raw) is not RawDataElement or raw.VR != "SQ":
            continue
        try:
            items = ds[tag].value
        except Exception:  # pydicom raises many types on a malformed sequence: it stays raw
            items = ()
        for item in items:
            _read_sequences(item)


def _fail(stage: Stage, exc: TfttError) -> Outcome:
    findings = exc.findings if isinstance(exc, ResidualPHIError) else ()
    return Outcome(ok=False, stage=stage, code=exc.code, message=exc.message, findings=findings)


def process_bytes(data: bytes, pipeline: Pipeline) -> Outcome:
    """Run one file through the whole headless path.

    Memory: the input bytes are not referenced after parsing (a caller that does not keep them
    lets them go), identifiers are harvested before the pixel stage so that the original and
    first-pass datasets can be dropped once pixels are cleaned; at most the parsed input, the
    cleaned copy and the output are alive together.
    """
    try:
        original, sequence_bytes = parse_with_sequence_bytes(data)
    except TfttError as exc:
        return _fail(Stage.PARSE, exc)
    del data

    stage = Stage.FIRST_PASS
    rules = pipeline.verification
    memos = pipeline.memos
    engine_memo = memos.engine if memos is not None else None
    try:
        first = deidentify(
            original, DeidContext(rules=pipeline.first, key=pipeline.key, memo=engine_memo)
        )
        stage = Stage.VERIFY
        identifiers = rules.harvest(original, memos.harvest if memos is not None else None, sequence_bytes)
        del original, sequence_bytes
        stage = Stage.PIXELS
        pixels = pipeline.pixel_stage(first.dataset)
        del first
        stage = Stage.SECOND_PASS
        second = deidentify(
            pixels.dataset,
            DeidContext(rules=pipeline.second, key=pipeline.key, pixels_cleaned=pixels.cleaned,
                        memo=engine_memo),
        )
        cleaned = pixels.cleaned
        del pixels
        output = serialize(second.dataset)
        file_name, report = second.file_name, second.report
        del second
        stage = Stage.VERIFY
        rules.verify(identifiers, output, file_name, memos.verify if memos is not None else None)
    except TfttError as exc:
        return _fail(stage, exc)
    except Exception as exc:  # a bug or a pydicom surprise: quarantine, never crash the batch
        return Outcome(ok=False, stage=stage, code="internal-error",
                       message=f"unexpected {type(exc).__name__} at stage {stage.value}")
    return Outcome(
        ok=True,
        stage=Stage.VERIFY,
        file_name=file_name,
        output=output,
        report=report,
        pixels_cleaned=cleaned,
    )
