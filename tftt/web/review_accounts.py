"""Reviewer accounts: argon2 password hashes from the settings, and the login rate limit.

Accounts live in ``settings.web.reviewers`` (username -> argon2 hash). Make a hash with
:func:`hash_password` (the ``tftt reviewer-hash`` command) and put it in the configuration;
the password itself is never stored. A login for an unknown username is checked against a
dummy hash, so the time taken does not tell whether the username exists.

:class:`LoginLimiter` counts failed logins per username and per client address in a sliding
window, in memory and bounded (the least recently seen keys are forgotten first), and is asked
*before* a password is checked, so a flood of guesses costs no argon2 work once it is limited.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import SecretStr

from tftt.errors import ConfigurationError
from tftt.settings import WebSettings

USERNAME_MAX_LENGTH = 64
PASSWORD_MAX_LENGTH = 1024
MIN_SESSION_SECRET_CHARS = 32
_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (random salt, argon2-cffi's default cost), for
    ``TFTT_WEB__REVIEWERS``.

    Raises:
        ValueError: the password is empty or longer than 1024 characters.
    """
    if not password or len(password) > PASSWORD_MAX_LENGTH:
        raise ValueError(f"a password has 1 to {PASSWORD_MAX_LENGTH} characters")
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True if ``password`` matches ``password_hash``; False for a mismatch or a bad hash."""
    if len(password) > PASSWORD_MAX_LENGTH:
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(1)
def _dummy_hash() -> str:
    return _HASHER.hash("no such reviewer")


def _is_argon2_hash(value: str) -> bool:
    return value.startswith(("$argon2id$", "$argon2i$", "$argon2d$"))


def check_review_settings(web: WebSettings) -> None:
    """Refuse to serve review pages that cannot be secured.

    Raises:
        ConfigurationError: no session secret, or one shorter than 32 characters; a reviewer
            name that is empty, too long or not printable; a reviewer entry that is not an
            argon2 hash (e.g. a plain password put in the configuration by mistake).
    """
    secret = web.session_secret
    if secret is None or len(secret.get_secret_value()) < MIN_SESSION_SECRET_CHARS:
        raise ConfigurationError(
            f"set TFTT_WEB__SESSION_SECRET (at least {MIN_SESSION_SECRET_CHARS} random "
            "characters): the review pages refuse to run without a session secret"
        )
    for username, password_hash in web.reviewers.items():
        if not _valid_username(username):
            raise ConfigurationError(
                f"reviewer names are 1-{USERNAME_MAX_LENGTH} printable characters without spaces"
            )
        if not _is_argon2_hash(password_hash.get_secret_value()):
            raise ConfigurationError(
                f"reviewer {username!r}: the configured value is not an argon2 hash "
                "(make one with `tftt reviewer-hash`)"
            )


def _valid_username(username: str) -> bool:
    return 0 < len(username) <= USERNAME_MAX_LENGTH and all(
        ch.isprintable() and not ch.isspace() for ch in username
    )


class ReviewerAccounts:
    """The configured reviewers; checks a username and password."""

    def __init__(self, reviewers: Mapping[str, SecretStr]) -> None:
        self._hashes = {name: value.get_secret_value() for name, value in reviewers.items()}

    def __contains__(self, username: object) -> bool:
        return isinstance(username, str) and username in self._hashes

    def authenticate(self, username: str, password: str) -> bool:
        """True if ``username`` is a reviewer and ``password`` is theirs.

        Takes about as long for an unknown username as for a wrong password.
        """
        known = self._hashes.get(username)
        if known is None:
            verify_password(_dummy_hash(), password)
            return False
        return verify_password(known, password)

    def fingerprint(self, username: str) -> str:
        """A short digest of the user's current hash: a session made before a password
        change (or for a removed reviewer) no longer matches."""
        known = self._hashes.get(username, "")
        return hashlib.sha256(known.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class LoginVerdict:
    """Whether a login attempt may be checked now; if not, how long to wait."""

    allowed: bool
    retry_after_seconds: int = 0


class LoginLimiter:
    """Failed-login counters per username and per client address (sliding window, bounded).

    Thread-safe. ``clock`` returns seconds (monotonic by default).
    """

    def __init__(
        self,
        *,
        max_per_user: int,
        max_per_address: int,
        window_seconds: float,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"user": max_per_user, "address": max_per_address}
        self._window = window_seconds
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, OrderedDict[str, deque[float]]] = {
            "user": OrderedDict(),
            "address": OrderedDict(),
        }

    @classmethod
    def for_settings(cls, web: WebSettings) -> LoginLimiter:
        return cls(
            max_per_user=web.login_max_failures_per_user,
            max_per_address=web.login_max_failures_per_address,
            window_seconds=web.login_window_seconds,
            max_keys=web.login_tracked_keys,
        )

    def _recent(self, kind: str, key: str, now: float) -> deque[float]:
        table = self._failures[kind]
        times = table.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del table[key]
        return times

    def check(self, username: str, address: str) -> LoginVerdict:
        """May a login for ``username`` from ``address`` be checked now?"""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for kind, key in (("user", username.casefold()), ("address", address)):
                times = self._recent(kind, key, now)
                if len(times) >= self._limits[kind]:
                    wait = max(wait, times[0] + self._window - now)
        if wait > 0:
            return LoginVerdict(False, max(1, int(wait + 0.999)))
        return LoginVerdict(True)

    def record_failure(self, username: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            for kind, key in (("user", username.casefold()), ("address", address)):
                table = self._failures[kind]
                times = self._recent(kind, key, now)
                times.append(now)
                while len(times) > self._limits[kind]:
                    times.popleft()
                table[key] = times
                table.move_to_end(key)
                while len(table) > self._max_keys:
                    table.popitem(last=False)

    def record_success(self, username: str) -> None:
        """Forget the username's failures (the address keeps its count until it ages out)."""
        with self._lock:
            self._failures["user"].pop(username.casefold(), None)

    def tracked(self) -> int:
        """How many usernames and addresses are remembered (for tests of the bound)."""
        with self._lock:
            return sum(len(table) for table in self._failures.values())
