from __future__ import annotations

import pytest
from pydantic import SecretStr

from tests.web.synthetic_case import PASSWORD, SESSION_SECRET, reviewer_hash
from tftt.errors import ConfigurationError
from tftt.settings import WebSettings
from tftt.web.review_accounts import (
    LoginLimiter,
    ReviewerAccounts,
    check_review_settings,
    hash_password,
    verify_password,
)


def test_hash_and_verify() -> None:
    hashed = reviewer_hash()
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    assert verify_password(hashed, PASSWORD)
    assert not verify_password(hashed, PASSWORD + " ")
    assert not verify_password("not a hash", PASSWORD)
    assert not verify_password(hashed, "x" * 2000)
    assert hash_password(PASSWORD) != hashed  # a new salt every time
    with pytest.raises(ValueError):
        hash_password("")


def test_accounts() -> None:
    accounts = ReviewerAccounts({"dr.a": SecretStr(reviewer_hash())})
    assert accounts.authenticate("dr.a", PASSWORD)
    assert not accounts.authenticate("dr.a", "wrong")
    assert not accounts.authenticate("dr.b", PASSWORD)  # unknown user: checked against a dummy
    assert "dr.a" in accounts and "dr.b" not in accounts
    changed = ReviewerAccounts({"dr.a": SecretStr(hash_password("another password"))})
    assert accounts.fingerprint("dr.a") != changed.fingerprint("dr.a")


def test_review_settings_are_checked() -> None:
    good = {"session_secret": SecretStr(SESSION_SECRET), "reviewers": {"dr.a": SecretStr(reviewer_hash())}}
    check_review_settings(WebSettings.model_validate(good))
    with pytest.raises(ConfigurationError, match="SESSION_SECRET"):
        check_review_settings(WebSettings.model_validate({**good, "session_secret": None}))
    with pytest.raises(ConfigurationError, match="SESSION_SECRET"):
        check_review_settings(WebSettings.model_validate({**good, "session_secret": SecretStr("short")}))
    plain = {"dr.a": SecretStr("hunter2-plain-password")}
    with pytest.raises(ConfigurationError, match="not an argon2 hash") as info:
        check_review_settings(WebSettings.model_validate({**good, "reviewers": plain}))
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigurationError, match="reviewer names"):
        check_review_settings(
            WebSettings.model_validate({**good, "reviewers": {"dr a": SecretStr(reviewer_hash())}})
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_counts_failures_per_user_and_per_address_in_a_window() -> None:
    clock = Clock()
    limiter = LoginLimiter(max_per_user=3, max_per_address=5, window_seconds=60, clock=clock)
    for _ in range(3):
        assert limiter.check("Dr.A", "10.0.0.1").allowed
        limiter.record_failure("Dr.A", "10.0.0.1")
    verdict = limiter.check("dr.a", "10.0.0.2")  # usernames are compared case-insensitively
    assert not verdict.allowed and verdict.retry_after_seconds == 60
    assert limiter.check("dr.b", "10.0.0.1").allowed  # address has 3 of 5
    limiter.record_failure("dr.b", "10.0.0.1")
    limiter.record_failure("dr.c", "10.0.0.1")
    assert not limiter.check("dr.new", "10.0.0.1").allowed  # address at 5
    assert limiter.check("dr.new", "10.0.0.9").allowed
    clock.now += 30
    assert not limiter.check("dr.a", "10.0.0.2").allowed
    assert limiter.check("dr.a", "10.0.0.2").retry_after_seconds == 30
    clock.now += 31
    assert limiter.check("dr.a", "10.0.0.1").allowed  # the window has passed


def test_success_clears_the_username_only() -> None:
    limiter = LoginLimiter(max_per_user=2, max_per_address=3, window_seconds=60, clock=Clock())
    limiter.record_failure("dr.a", "10.0.0.1")
    limiter.record_failure("dr.a", "10.0.0.1")
    assert not limiter.check("dr.a", "10.0.0.7").allowed
    limiter.record_success("dr.a")
    assert limiter.check("dr.a", "10.0.0.7").allowed
    limiter.record_failure("dr.x", "10.0.0.1")
    assert not limiter.check("dr.y", "10.0.0.1").allowed  # the address kept its count


def test_limiter_memory_is_bounded() -> None:
    limiter = LoginLimiter(max_per_user=2, max_per_address=2, window_seconds=60, max_keys=50, clock=Clock())
    for n in range(1000):
        limiter.record_failure(f"user{n}", f"10.0.{n // 256}.{n % 256}")
    assert limiter.tracked() == 100
    limiter.record_failure("user999", "10.9.9.8")
    assert not limiter.check("user999", "10.9.9.9").allowed  # the newest are kept
    assert limiter.check("user0", "10.9.9.9").allowed  # the oldest were forgotten
