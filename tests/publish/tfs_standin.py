"""A STAND-IN for an RSNA MIRC Teaching File System (TFS), for tests only. It is not the TFS.

It reproduces, on loopback, the responses documented in ``shared/notes/mirc-tfs.md`` (read
from MIRC2's SubmitService and StorageService and observed on a running TFS):

- ``POST /submit/{ssid}?suppress`` with ``application/x-zip-compressed``: no or wrong Basic
  credentials → ``401`` with ``WWW-Authenticate: Basic realm="MIRC"``; a user without the
  ``author`` role, or submission disabled → ``302`` to ``/query``; success → ``200`` and the
  terse body ``The zip file was received and unpacked successfully:<br/>@/storage/ss1/docs/
  <17 digits>/MIRCdocument.xml<br/>The site index has been updated.<br/>`` (or "was not
  updated" without the publisher role). The zip is unpacked flat; ``<owner>`` becomes the
  submitting user, ``*`` is removed from ``<read>`` unless the user is a publisher.
- ``POST /submit/{ssid}/docs/<dir>/MIRCdocument.xml?suppress``: the owner's update replaces
  the document in place and the body starts ``The document has been updated.``; anyone else's
  (or an update of a missing document) silently becomes a NEW document.
- ``GET /storage/delete/{ssid}/docs/<dir>/MIRCdocument.xml``: ``200 <ok/>`` for the owner,
  ``404 <notok/>`` otherwise (also when the document does not exist).
- ``GET /storage/{ssid}/docs/<dir>/<file>``: the stored file, the rendered document (HTML),
  ``?xsl`` the XML as stored, ``302`` to ``/challenge`` if the user may not read it, and
  ``404`` once it is deleted.

It also CHECKS every request: method and path shape, Basic credentials sent up front, the
content type and a ``Content-Length`` (the TFS reads exactly that many bytes, so chunked
bodies are refused), and no credentials in the URL. A request that breaks a rule is answered
``400`` and recorded in :attr:`TfsStandIn.violations`, which the tests assert is empty.
Knobs (:attr:`TfsStandIn.fail_status`, :attr:`TfsStandIn.body_override`,
:attr:`TfsStandIn.delay_seconds`, :attr:`TfsStandIn.ignore_deletes`) let tests force 5xx
answers, odd bodies, timeouts and an ``<ok/>`` that deleted nothing.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree as ET

_DOC_PATH = re.compile(r"^docs/([0-9]{17})/([A-Za-z0-9_.-]+\.xml)$")


@dataclass
class StoredDocument:
    owner: str
    xml_name: str
    files: dict[str, bytes]

    @property
    def xml(self) -> bytes:
        return self.files[self.xml_name]

    def authorization(self, what: str) -> str | None:
        auth = ET.fromstring(self.xml).find("authorization")
        node = auth.find(what) if auth is not None else None
        return None if node is None else (node.text or "")


@dataclass
class Recorded:
    method: str
    target: str  # path and query, as sent
    user: str | None
    content_type: str | None
    content_length: int | None


@dataclass
class User:
    password: str
    roles: frozenset[str]


@dataclass
class TfsStandIn:
    """State and knobs of the stand-in; :meth:`start` serves it on 127.0.0.1."""

    users: dict[str, User]
    ssid: str = "ss1"
    submission_enabled: bool = True
    fail_status: int | None = None
    body_override: str | None = None
    delay_seconds: float = 0.0
    ignore_deletes: bool = False
    documents: dict[str, StoredDocument] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    _counter: int = 20240101120000000
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- lifecycle ---

    def start(self) -> TfsStandIn:
        standin = self

        class Handler(_Handler):
            state = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def address(self, directory: str) -> str:
        return f"/storage/{self.ssid}/docs/{directory}/{self.documents[directory].xml_name}"

    # --- the TFS behaviour ---

    def new_directory(self) -> str:
        with self._lock:
            self._counter += 1
            return str(self._counter)

    def unpack(self, data: bytes) -> tuple[str, dict[str, bytes]] | None:
        """Unpacked flat as the Submit Service does; the MIRCdocument's name and the files."""
        files: dict[str, bytes] = {}
        xml_name = None
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                name = info.filename.replace("\\", "/").rsplit("/", 1)[-1]
                files[name] = archive.read(info)
                if name.lower().endswith(".xml"):
                    try:
                        if ET.fromstring(files[name]).tag == "MIRCdocument":
                            xml_name = name
                    except ET.ParseError:
                        del files[name]
        return (xml_name, files) if xml_name else None

    def set_authorization(
        self, files: dict[str, bytes], xml_name: str, user: str, preserve_owner: bool
    ) -> str:
        root = ET.fromstring(files[xml_name])
        auth = root.find("authorization")
        if auth is None:
            auth = ET.SubElement(root, "authorization")
        owner = auth.find("owner")
        if not preserve_owner or owner is None:
            if owner is not None:
                auth.remove(owner)
            owner = ET.SubElement(auth, "owner")
            owner.text = user
        read = auth.find("read")
        if read is None:
            ET.SubElement(auth, "read")
        elif "*" in (read.text or "") and "publisher" not in self.users[user].roles:
            read.text = ",".join(p for p in re.split(r"[\s,*]+", read.text or "") if p)
        files[xml_name] = ET.tostring(root, encoding="utf-8")
        return (owner.text or "").strip()


class _Handler(BaseHTTPRequestHandler):
    state: TfsStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # --- plumbing ---

    def _user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            name, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user = self.state.users.get(name)
        return name if user is not None and user.password == password else None

    def _send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/html",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _violation(self, what: str) -> None:
        self.state.violations.append(f"{self.command} {self.path}: {what}")
        self._send(400, what.encode())

    def _record(self) -> None:
        length = self.headers.get("Content-Length")
        self.state.requests.append(
            Recorded(
                method=self.command,
                target=self.path,
                user=self._user(),
                content_type=self.headers.get("Content-Type"),
                content_length=int(length) if length is not None else None,
            )
        )

    def _common_checks(self) -> bool:
        self._record()
        if self.state.delay_seconds:
            time.sleep(self.state.delay_seconds)
        if "@" in self.path or any(u.password in self.path for u in self.state.users.values()):
            self._violation("credentials in the URL")
            return False
        if not self.headers.get("Authorization", "").startswith("Basic "):
            self._violation("no HTTP Basic credentials sent")
            return False
        if self.state.fail_status is not None:
            self._drain()
            self._send(self.state.fail_status, b"<html>Server Error</html>")
            return False
        return True

    def _drain(self) -> bytes:
        length = self.headers.get("Content-Length")
        return self.rfile.read(int(length)) if length else b""

    # --- POST: the Submit Service ---

    def do_POST(self) -> None:
        if not self._common_checks():
            return
        parts = urlsplit(self.path)
        match = re.fullmatch(rf"/submit/{self.state.ssid}(?:/(.+))?", parts.path)
        if match is None or parts.query != "suppress":
            self._drain()
            return self._violation("not a Submit Service path with ?suppress")
        if self.headers.get("Content-Type") != "application/x-zip-compressed":
            self._drain()
            return self._violation("content type is not application/x-zip-compressed")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._violation("chunked body (the TFS reads Content-Length bytes)")
        if self.headers.get("Content-Length") is None:
            return self._violation("no Content-Length")
        data = self._drain()
        user = self._user()
        if user is None:
            return self._send(401, headers={"WWW-Authenticate": 'Basic realm="MIRC"'})
        if "author" not in self.state.users[user].roles or not self.state.submission_enabled:
            return self._send(302, headers={"Location": "/query"})
        docref = match[1]
        update_of = None
        if docref is not None:
            doc_match = _DOC_PATH.fullmatch(docref)
            if doc_match is None:
                return self._violation("update path is not docs/<dir>/<name>.xml")
            update_of = doc_match[1]
        if self.state.body_override is not None:
            return self._send(200, self.state.body_override.encode())
        unpacked = self.state.unpack(data)
        if unpacked is None:
            body = (
                "The zip file was unpacked successfully, but it did not contain a "
                "MIRCdocument file to index.<br/>The submission was deleted.<br/>"
            )
            return self._send(200, body.encode())
        xml_name, files = unpacked
        result = []
        old = self.state.documents.get(update_of) if update_of else None
        if update_of is not None and old is not None and old.owner == user:
            directory = update_of
            result.append("The document has been updated.")
            preserve = True
        else:
            directory = self.state.new_directory()
            preserve = False
        owner = self.state.set_authorization(files, xml_name, user, preserve)
        self.state.documents[directory] = StoredDocument(owner, xml_name, files)
        result.append("The zip file was received and unpacked successfully:")
        result.append(f"@/storage/{self.state.ssid}/docs/{directory}/{xml_name}")
        if "publisher" in self.state.users[user].roles:
            result.append("The site index has been updated.")
        else:
            result.append("The site index was not updated.")
        self._send(200, "".join(f"{line}<br/>" for line in result).encode())

    # --- GET: the Storage Service ---

    def do_GET(self) -> None:
        if not self._common_checks():
            return
        parts = urlsplit(self.path)
        user = self._user()
        delete = re.fullmatch(rf"/storage/delete/{self.state.ssid}/(.+)", parts.path)
        if delete is not None:
            doc_match = _DOC_PATH.fullmatch(delete[1])
            if doc_match is None:
                return self._violation("delete path is not docs/<dir>/<name>.xml")
            doc = self.state.documents.get(doc_match[1])
            if doc is not None and user is not None and doc.owner == user:
                if not self.state.ignore_deletes:
                    del self.state.documents[doc_match[1]]
                return self._send(200, b"<ok/>", "text/xml")
            return self._send(404, b"<notok/>", "text/xml")
        read = re.fullmatch(rf"/storage/{self.state.ssid}/docs/([0-9]{{17}})/([^/]+)", parts.path)
        if read is None:
            return self._violation("not a Storage Service path")
        doc = self.state.documents.get(read[1])
        if doc is None or read[2] not in doc.files:
            return self._send(404)
        if read[2] != doc.xml_name:
            return self._send(200, doc.files[read[2]], "application/octet-stream")
        readers = doc.authorization("read")
        if not (user == doc.owner or (readers is not None and "*" in readers)):
            target = quote(self.path, safe="")
            return self._send(302, headers={"Location": f"/challenge?url={target}"})
        if parts.query == "xsl":
            return self._send(200, doc.xml, "text/xml")
        title = ET.fromstring(doc.xml).findtext("title") or ""
        page = f"<html><body><h1>{_escape(title)}</h1></body></html>"
        self._send(200, page.encode())


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
