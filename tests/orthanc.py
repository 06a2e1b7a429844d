"""Real Orthanc servers for tests and benchmarks (generic: any test package may import this).

An :class:`OrthancServer` is one ``/usr/sbin/Orthanc`` child process with its own working
folder (configuration, storage, log), free loopback ports, HTTP authentication, the DICOMweb
plugin and ``HttpCompressionEnabled: false``. It is started with :meth:`OrthancServer.start`,
is ready once ``GET /system`` answers, and is stopped by PID (SIGTERM, then SIGKILL if it has
not exited within the timeout). :meth:`OrthancServer.restart` reuses the same storage and ports
after the old process has exited (Orthanc keeps its SQLite index locked until then).

The GDCM plugin is never loaded: Orthanc 1.10.1 crashes in it when it transcodes.

Typical use in a conftest::

    @pytest.fixture(scope="session")
    def pacs(tmp_path_factory):
        with OrthancServer.running(tmp_path_factory.mktemp("pacs"), aet="PACS") as server:
            yield server
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

ORTHANC_BINARY = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def orthanc_available() -> bool:
    """True when the Orthanc binary and the DICOMweb plugin are installed."""
    return ORTHANC_BINARY.exists() and DICOMWEB_PLUGIN.exists()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, then release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OrthancServer:
    """One Orthanc process on loopback, configured for tests.

    Args:
        workdir: a fresh folder; holds ``orthanc.json``, ``storage/`` and ``orthanc.log``.
        aet: Orthanc's DICOM AE title (also its ``Name``).
        username / password: the one HTTP user (authentication is always on).
        modalities: ``name -> (aet, host, port)`` DICOM peers (C-MOVE destinations, C-STORE).
        lua_scripts: Lua files to load (``LuaScripts``).
        env: extra environment variables for the process (e.g. read by Lua ``os.getenv``).
        extra_config: keys merged last into the JSON configuration.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        aet: str = "ORTHANC",
        username: str = "orthanc",
        password: str = "orthanc-test-password",
        modalities: Mapping[str, tuple[str, str, int]] | None = None,
        lua_scripts: Sequence[Path] = (),
        env: Mapping[str, str] | None = None,
        extra_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.aet = aet
        self.username = username
        self.password = password
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.modalities = dict(modalities or {})
        self.lua_scripts = [Path(p).resolve() for p in lua_scripts]
        self.env = dict(env or {})
        self.extra_config = dict(extra_config or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._terminating: subprocess.Popen[bytes] | None = None
        self.config_path = self.workdir / "orthanc.json"
        self.log_path = self.workdir / "orthanc.log"
        self.storage = self.workdir / "storage"

    # -- addresses -------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        """REST root, e.g. ``http://127.0.0.1:PORT`` (no credentials)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """DICOMweb root, e.g. ``http://127.0.0.1:PORT/dicom-web``."""
        return f"{self.url}/dicom-web"

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    # -- configuration ---------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The JSON configuration this server is started with."""
        config: dict[str, Any] = {
            "Name": self.aet,
            "StorageDirectory": str(self.storage),
            "IndexDirectory": str(self.storage),
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True,
                         "WadoRoot": "/wado", "Ssl": False},
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.username: self.password},
            "HttpCompressionEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "UnknownSopClassAccepted": True,
            "DicomModalities": {name: list(peer) for name, peer in self.modalities.items()},
            "LuaScripts": [str(p) for p in self.lua_scripts],
            "StableAge": 60,
            "HttpTimeout": 10,
            "SaveJobs": False,
            "ConcurrentJobs": 2,
            "OverwriteInstances": True,
            "BuiltinDecoderTranscoderOrder": "Before",
        }
        config.update(self.extra_config)
        return config

    # -- life cycle ------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> OrthancServer:
        """Start the process and wait until ``/system`` answers.

        Raises:
            RuntimeError: Orthanc exited or did not become ready within ``timeout``.
        """
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("this Orthanc is already running")
        self.stop()  # a terminated process must have exited before its storage is reused
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        self.process = subprocess.Popen(
            [str(ORTHANC_BINARY), f"--logfile={self.log_path}", str(self.config_path)],
            cwd=self.workdir,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll ``GET /system`` until it answers 200.

        Raises:
            RuntimeError: the process exited, or the deadline passed.
        """
        deadline = time.monotonic() + timeout
        with httpx.Client(auth=self.auth, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"Orthanc exited during start-up; see {self.log_path}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url}/system").status_code == 200 and self._dicom_listening():
                        return
                time.sleep(0.05)
        raise RuntimeError(f"Orthanc did not become ready in {timeout} s; see {self.log_path}")

    def _dicom_listening(self) -> bool:
        """The DICOM port accepts connections too (HTTP can be up before it)."""
        try:
            with socket.create_connection((self.host, self.dicom_port), timeout=1.0):
                return True
        except OSError:
            return False

    def terminate(self) -> None:
        """Send SIGTERM without waiting (Orthanc takes about 3 s to stop); see :meth:`stop`.

        Use it to stop several servers in parallel, then call :meth:`stop` on each.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self._terminating = self.process
        self.process = None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process and wait for it to exit; SIGKILL it after ``timeout``."""
        if self.process is not None:
            self.terminate()
        process, self._terminating = self._terminating, None
        if process is None:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def restart(self, timeout: float = 30.0) -> OrthancServer:
        """Stop (waiting for the old PID to exit) and start again on the same storage and ports."""
        self.stop()
        return self.start(timeout)

    @classmethod
    @contextlib.contextmanager
    def running(cls, workdir: Path, **kwargs: Any) -> Iterator[OrthancServer]:
        """Start a server for the duration of a ``with`` block; always stop it."""
        server = cls(workdir, **kwargs)
        try:
            yield server.start()
        finally:
            server.stop()

    # -- REST helpers for test set-up (not the code under test) ----------------------------
    def client(self, timeout: float = 60.0) -> httpx.Client:
        """An ``httpx.Client`` on the REST root with this server's credentials."""
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=timeout)

    def upload(self, files: Sequence[Path]) -> list[str]:
        """Upload files one by one with ``POST /instances``; returns Orthanc instance ids.

        Raises:
            httpx.HTTPStatusError: Orthanc refused a file.
        """
        ids: list[str] = []
        with self.client() as client:
            for path in files:
                response = client.post(
                    "/instances",
                    content=Path(path).read_bytes(),
                    headers={"Content-Type": "application/dicom"},
                )
                response.raise_for_status()
                ids.append(response.json()["ID"])
        return ids

    def find_study(self, study_uid: str) -> str | None:
        """Orthanc's id of the study with this StudyInstanceUID, or None."""
        with self.client() as client:
            response = client.post("/tools/lookup", content=study_uid)
            response.raise_for_status()
            for item in response.json():
                if item.get("Type") == "Study":
                    return str(item["ID"])
        return None

    def study_instance_uids(self, study_uid: str) -> set[str]:
        """The SOPInstanceUIDs Orthanc holds for a study (empty when it has none)."""
        orthanc_id = self.find_study(study_uid)
        if orthanc_id is None:
            return set()
        with self.client() as client:
            response = client.get(f"/studies/{orthanc_id}/instances")
            response.raise_for_status()
            return {item["MainDicomTags"]["SOPInstanceUID"] for item in response.json()}

    def delete_study(self, study_uid: str) -> None:
        """Delete a study if present."""
        orthanc_id = self.find_study(study_uid)
        if orthanc_id is not None:
            with self.client() as client:
                client.delete(f"/studies/{orthanc_id}").raise_for_status()

    def add_modality(self, name: str, aet: str, host: str, port: int) -> None:
        """Declare a DICOM peer at run time (``PUT /modalities/<name>``)."""
        with self.client() as client:
            client.put(
                f"/modalities/{name}", json={"AET": aet, "Host": host, "Port": port}
            ).raise_for_status()

    def log_text(self) -> str:
        """Orthanc's log so far (for failure messages)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def stop_all(servers: Sequence[OrthancServer], timeout: float = 20.0) -> None:
    """Stop several servers in parallel: SIGTERM to all, then wait for each PID."""
    for server in servers:
        server.terminate()
    for server in servers:
        server.stop(timeout)
