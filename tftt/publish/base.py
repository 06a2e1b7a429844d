"""The contract between the case pipeline and every publication target.

A target (``folder``, ``dicomweb``, ``mirc``, ...) is one module with one class that satisfies
:class:`PublicationTarget`, registered by name in :mod:`tftt.publish.registry`. It receives a
:class:`PublishableCase`: the case id, the teaching metadata, and for each image (in reading
order: series, instance, frame) the second-pass DICOM file and its JPEGs. Only second-pass,
verified files may be put into a ``PublishableCase``; targets copy them as they are.

Publishing is idempotent per (case, target): publishing again replaces what the target holds
for the case, and the caller keeps one publication record (``upsert_publication``). The caller
passes the receipt of the case's current publication on that target (rebuilt from the record)
as ``previous``: a target that cannot find its copy of a case by the case id alone (MIRC, whose
server names each document) updates that copy in place instead of adding a second one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from tftt.store.case_ids import CASE_ID_PATTERN

TEACHING_TEXT_FIELDS = ("title", "history", "findings", "diagnosis", "author", "abstract")
TEACHING_LIST_FIELDS = ("keywords",)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PublishableFrame(_Frozen):
    """One frame of an image as JPEGs: the clean one and, if the reviewer annotated it, the
    annotated one. ``number`` is the 1-based frame number in the DICOM object (a cine may
    publish only its key frames)."""

    number: int = Field(ge=1)
    jpeg: Path
    annotated_jpeg: Path | None = None


class PublishableImage(_Frozen):
    """One second-pass DICOM object and the JPEGs of its frames (in frame order)."""

    dicom: Path
    frames: tuple[PublishableFrame, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _frames_in_order(self) -> PublishableImage:
        numbers = [frame.number for frame in self.frames]
        if numbers != sorted(set(numbers)):
            raise ValueError("frame numbers must be unique and increasing")
        return self


class PublishableCase(_Frozen):
    """Everything a target needs to publish one case.

    ``metadata`` holds the teaching metadata as plain JSON: ``title`` (required), ``history``,
    ``findings``, ``diagnosis``, ``author``, ``abstract`` (text or null) and ``keywords`` (a list
    of text); other keys are kept as given. A pydantic model (e.g. the review decision's
    ``TeachingMetadata``) is accepted and dumped to JSON.
    """

    case_id: str = Field(pattern=CASE_ID_PATTERN)
    metadata: dict[str, JsonValue]
    images: tuple[PublishableImage, ...] = Field(min_length=1)

    @field_validator("metadata", mode="before")
    @classmethod
    def _dump_models(cls, value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return value

    @field_validator("metadata")
    @classmethod
    def _teaching_fields(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        title = value.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ValueError("metadata needs a non-empty 'title'")
        for key in TEACHING_TEXT_FIELDS:
            if value.get(key) is not None and not isinstance(value[key], str):
                raise ValueError(f"metadata '{key}' must be text")
        for key in TEACHING_LIST_FIELDS:
            items = value.get(key)
            if items is not None and (
                not isinstance(items, list) or not all(isinstance(i, str) for i in items)
            ):
                raise ValueError(f"metadata '{key}' must be a list of text")
        return value

    def text(self, key: str) -> str | None:
        """A teaching text field, or ``None`` if absent or empty."""
        value = self.metadata.get(key)
        return value if isinstance(value, str) and value.strip() else None

    @property
    def keywords(self) -> list[str]:
        items = self.metadata.get("keywords")
        return [i for i in items if isinstance(i, str)] if isinstance(items, list) else []


class PublicationReceipt(_Frozen):
    """What a target reports after publishing; ``remote_ref`` goes into the publication record
    (a folder path, an archive study UID, a MIRC document URL, ...)."""

    target: str
    case_id: str = Field(pattern=CASE_ID_PATTERN)
    remote_ref: str
    details: dict[str, JsonValue] = Field(default_factory=dict)


@runtime_checkable
class PublicationTarget(Protocol):
    """A place where cases are published. Implementations raise ``TargetUnavailableError``
    (transient: retried) or ``TargetRejectedError`` (permanent), never third-party errors."""

    name: str

    def publish(
        self, case: PublishableCase, previous: PublicationReceipt | None = None
    ) -> PublicationReceipt:
        """Publish ``case``, replacing whatever this target holds for it (idempotent).

        ``previous`` is the receipt of the case's current publication on this target, if any
        (``None`` for a first publication, or after a take-down).
        """
        ...

    def take_down(self, case_id: str, receipt: PublicationReceipt) -> None:
        """Remove the case from this target; succeed if it is already gone."""
        ...
