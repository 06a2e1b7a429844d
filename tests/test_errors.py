import pickle

import pytest

from tftt.errors import (
    ConfigurationError,
    DeidentificationError,
    RedactionError,
    ResidualPHIError,
    RuleError,
    TargetRejectedError,
    TargetUnavailableError,
    TfttError,
    UnsupportedInputError,
    is_retryable,
)


@pytest.mark.parametrize("cls", [TfttError, ConfigurationError, RuleError, UnsupportedInputError,
                                 DeidentificationError, RedactionError, TargetRejectedError,
                                 TargetUnavailableError])
def test_errors_round_trip_through_pickle(cls):
    err = cls("something failed", code="some-code")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == "something failed" and back.code == "some-code"
    assert back.retryable == err.retryable


def test_residual_phi_error_keeps_its_findings_through_pickle():
    err = ResidualPHIError("2 findings", findings=("(0010,0010) PatientName: person name", "file name"))
    back = pickle.loads(pickle.dumps(err))
    assert back.findings == err.findings and back.code == "residual-phi"


def test_only_transient_errors_are_retryable():
    assert is_retryable(TargetUnavailableError("down"))
    assert not is_retryable(TargetRejectedError("401"))
    assert not is_retryable(ValueError("not ours"))
    assert UnsupportedInputError("x").code == "unsupported-input"
