"""The site's secret key: keyed UID hashing, pseudonyms and date offsets depend on it.

From ``settings.secret_key`` (``TFTT_SECRET_KEY``) when set, else a 32-byte key file
``<data_dir>/secret.key`` made once, private (0600), and refused if anyone else could read it.
Losing the key breaks the consistency of UIDs across cases; leaking it lets others test guesses.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from pydantic import SecretStr

from tftt.errors import ConfigurationError
from tftt.settings import Settings

KEY_BYTES = 32
MIN_SECRET_CHARS = 32


def load_or_create_key(settings: Settings) -> bytes:
    """The site key as bytes.

    ``TFTT_SECRET_KEY`` is used as its UTF-8 bytes and must have at least 32 characters (it is a
    different key from a key file's random bytes). Otherwise the key file is read, or created
    race-free: the bytes go to a private temporary file first, which is then hard-linked to
    ``secret.key`` (fails if another process was first, whose key then wins), so no reader ever
    sees a partly written key.

    Raises:
        ConfigurationError: the secret is too short; the key file is readable or writable by
            group or others, is not a regular file, is not owned by this user, or does not hold
            exactly 32 bytes; or the data directory cannot be written.
    """
    if settings.secret_key is not None:
        value = settings.secret_key.get_secret_value()
        if len(value) < MIN_SECRET_CHARS:
            raise ConfigurationError(
                f"TFTT_SECRET_KEY must have at least {MIN_SECRET_CHARS} characters"
            )
        return value.encode("utf-8")
    path = settings.key_file
    if not path.exists() and not path.is_symlink():
        _create_key_file(path)
    return _read_key_file(path)


def _create_key_file(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(KEY_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process created it first; use that one
        finally:
            tmp.unlink(missing_ok=True)
    except PermissionError as exc:
        raise ConfigurationError(f"cannot create the key file {path}: permission denied") from exc


def _read_key_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot open the key file {path} (a symlink or unreadable?)"
        ) from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigurationError(f"the key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigurationError(
                f"the key file {path} is accessible to group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
            )
        if info.st_uid != os.geteuid():
            raise ConfigurationError(f"the key file {path} is owned by another user")
        key = handle.read(KEY_BYTES + 1)
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            f"the key file {path} must hold exactly {KEY_BYTES} bytes; "
            "restore it from backup (a new key changes every published UID)"
        )
    return key


def load_or_create_secret_file(path: Path) -> bytes:
    """32 random bytes kept in ``path`` (0600), created once like the key file.

    Raises:
        ConfigurationError: as :func:`load_or_create_key` for its key file.
    """
    if not path.exists() and not path.is_symlink():
        _create_key_file(path)
    return _read_key_file(path)


def with_embedded_web_secrets(settings: Settings) -> Settings:
    """Settings whose webhook HMAC secret and session secret are set.

    On the embedded default (neither configured) each is generated once into the data directory
    (``webhook.secret``, ``session.secret``, mode 0600, used as hex text), so the webhook is
    never served without authentication and a PACS or the demo can read the secret to sign.
    """
    web = settings.web
    updates: dict[str, SecretStr] = {}
    if web.webhook_hmac_secret is None and web.webhook_bearer_token is None:
        updates["webhook_hmac_secret"] = SecretStr(
            load_or_create_secret_file(settings.data_dir / "webhook.secret").hex())
    if web.session_secret is None:
        updates["session_secret"] = SecretStr(load_or_create_secret_file(settings.data_dir / "session.secret").hex())
    if not updates:
        return settings
    return settings.model_copy(update={"web": web.model_copy(update=updates)})
