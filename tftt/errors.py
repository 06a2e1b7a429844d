"""One hierarchy of typed errors for TFTT.

Every error says whether retrying can help (``retryable``). Messages never carry PHI: they
name attributes, tags, files by their *new* identity, counts and reasons, never values
taken from a patient's data. All errors round-trip through :mod:`pickle`, because Prefect
serialises exceptions between processes.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TfttError(Exception):
    """Base of every error TFTT raises on purpose.

    ``code`` is a short, stable, machine-readable reason (used in quarantine records).
    """

    retryable: ClassVar[bool] = False
    default_code: ClassVar[str] = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.__dict__.copy()))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[TfttError], message: str, state: dict[str, Any]) -> TfttError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ConfigurationError(TfttError):
    """Settings or deployment are wrong; fix the configuration, do not retry."""

    default_code = "configuration"


class RuleError(TfttError):
    """A rule or profile file is missing, malformed or inconsistent."""

    default_code = "rule"


class UnsupportedInputError(TfttError):
    """The input cannot be processed (does not parse, unsupported transfer syntax, ...)."""

    default_code = "unsupported-input"


class DeidentificationError(TfttError):
    """De-identification of an object failed; the object must be quarantined."""

    default_code = "deidentification"


class RedactionError(DeidentificationError):
    """A pixel redaction could not be applied, or burned-in text remains."""

    default_code = "redaction"


class ResidualPHIError(DeidentificationError):
    """Verification found an identifier (or a disallowed attribute) in the output.

    ``findings`` lists attribute paths and reasons, never the offending values.
    """

    default_code = "residual-phi"

    def __init__(self, message: str, *, findings: tuple[str, ...] = (), code: str | None = None):
        super().__init__(message, code=code)
        self.findings = tuple(findings)


class TargetError(TfttError):
    """A PACS, archive or publication target failed."""

    default_code = "target"


class TargetUnavailableError(TargetError):
    """Connection refused, timeout or 5xx: transient, retry with backoff."""

    retryable = True
    default_code = "target-unavailable"


class TargetRejectedError(TargetError):
    """Authentication failure, 4xx or rejected instances: permanent, do not retry."""

    default_code = "target-rejected"


class ReviewError(TfttError):
    """A review decision is invalid, expired or missing."""

    default_code = "review"


def is_retryable(exc: BaseException) -> bool:
    """True only for errors that TFTT marks as transient."""
    return isinstance(exc, TfttError) and exc.retryable
