from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from tftt.errors import ConfigurationError
from tftt.settings import Settings
from tftt.store.keys import KEY_BYTES, load_or_create_key


def test_key_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = load_or_create_key(settings)
    assert len(key) == KEY_BYTES
    mode = stat.S_IMODE(os.stat(settings.key_file).st_mode)
    assert mode == 0o600
    assert load_or_create_key(settings) == key
    assert settings.key_file.read_bytes() == key
    assert [p.name for p in settings.key_file.parent.iterdir()] == ["secret.key"]  # no temp left


def test_two_sites_get_different_keys(tmp_path: Path) -> None:
    a = load_or_create_key(Settings(data_dir=tmp_path / "a"))
    b = load_or_create_key(Settings(data_dir=tmp_path / "b"))
    assert a != b


def test_concurrent_first_use_agrees_on_one_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    barrier = threading.Barrier(8)
    keys: list[bytes] = []

    def worker() -> None:
        barrier.wait()
        keys.append(load_or_create_key(settings))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert settings.key_file.read_bytes() == keys[0]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_key_file_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    load_or_create_key(settings)
    os.chmod(settings.key_file, mode)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_or_create_key(settings)


def test_truncated_key_file_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    settings.key_file.parent.mkdir(parents=True)
    fd = os.open(settings.key_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"short")
    os.close(fd)
    with pytest.raises(ConfigurationError, match="exactly 32 bytes"):
        load_or_create_key(settings)


def test_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.key"
    fd = os.open(real, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"k" * KEY_BYTES)
    os.close(fd)
    settings = Settings(data_dir=tmp_path / "data")
    settings.key_file.parent.mkdir(parents=True)
    settings.key_file.symlink_to(real)
    with pytest.raises(ConfigurationError, match="symlink"):
        load_or_create_key(settings)


def test_secret_from_settings_wins_and_must_be_long(tmp_path: Path) -> None:
    secret = "s" * 40
    settings = Settings(data_dir=tmp_path / "data", secret_key=SecretStr(secret))
    assert load_or_create_key(settings) == secret.encode()
    assert not settings.key_file.exists()
    short = Settings(data_dir=tmp_path / "data", secret_key=SecretStr("short"))
    with pytest.raises(ConfigurationError) as info:
        load_or_create_key(short)
    assert "short" not in str(info.value).replace("at least", "")
