"""Streaming ``multipart/related`` (RFC 2046) in both directions, in bounded memory.

:class:`MultipartParser` is a push parser: feed it the body in chunks of any size and it hands
each part's bytes to a :class:`PartSink` as they arrive, keeping only a tail shorter than the
delimiter between chunks. :class:`DicomFileSink` writes each part to a temporary file in the
destination folder and renames it to ``<sha256>.dcm`` once complete.

:func:`multipart_body` does the reverse for uploads: it yields a body built from files, read
in chunks, with its exact length known in advance.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from email.message import Message
from pathlib import Path
from typing import Protocol

from tftt.errors import UnsupportedInputError
from tftt.pacs.hashed_file import HashedFile

_MAX_HEADER_BYTES = 16 * 1024
_DICM_OFFSET = 128
_CHUNK = 1024 * 1024


class MultipartError(UnsupportedInputError):
    """The body is not well-formed ``multipart/related``."""

    default_code = "bad-multipart"


def content_type_params(content_type: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type header into its lower-case media type and its parameters."""
    message = Message()
    message["content-type"] = content_type
    params = {str(k).lower(): str(v) for k, v in message.get_params(failobj=[])[1:]}
    return message.get_content_type(), params


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/*`` Content-Type.

    Raises:
        MultipartError: not multipart, or no usable boundary.
    """
    media_type, params = content_type_params(content_type)
    boundary = params.get("boundary", "")
    if not media_type.startswith("multipart/") or not 0 < len(boundary) <= 70:
        raise MultipartError("response is not multipart with a boundary")
    return boundary.encode("latin-1")


class PartSink(Protocol):
    """Receives parts from :class:`MultipartParser`, in order."""

    def begin(self, headers: Mapping[str, str]) -> None: ...

    def data(self, chunk: memoryview) -> None: ...

    def end(self) -> None: ...


class MultipartParser:
    """Incremental parser of one ``multipart`` body.

    Call :meth:`feed` with successive chunks, then :meth:`close`.

    Raises (from ``feed``/``close``):
        MultipartError: malformed headers, or the body ended before the closing delimiter.
    """

    def __init__(self, boundary: bytes, sink: PartSink) -> None:
        self._dash_boundary = b"--" + boundary
        self._delimiter = b"\r\n--" + boundary
        self._sink = sink
        self._buffer = b""
        self._state = "preamble"
        self.parts = 0

    def feed(self, chunk: bytes) -> None:
        tail = self._buffer
        if tail and self._state == "body" and len(chunk) > len(self._delimiter):
            # Fast path for big bodies: avoid copying every chunk behind the kept tail. A
            # delimiter that starts inside the tail lies wholly inside this small probe.
            probe = tail + chunk[: len(self._delimiter)]
            if probe.find(self._delimiter) < 0:
                self._sink.data(memoryview(tail))
                tail = b""
        buffer = tail + chunk if tail else chunk
        while True:
            consumed = self._step(buffer)
            if consumed is None:
                break
            buffer = buffer[consumed:]
        self._buffer = buffer

    def close(self) -> None:
        if self._state != "done":
            raise MultipartError("multipart body ended before its closing delimiter")

    def _step(self, buffer: bytes) -> int | None:
        """Consume from the start of ``buffer``; None when more input is needed."""
        if self._state == "preamble":
            # The first boundary may start the body directly or follow a preamble line.
            if buffer.startswith(self._dash_boundary):
                self._state = "after-delimiter"
                return len(self._dash_boundary)
            index = buffer.find(self._delimiter)
            if index >= 0:
                self._state = "after-delimiter"
                return index + len(self._delimiter)
            keep = len(self._delimiter) - 1
            return max(len(buffer) - keep, 0) or None
        if self._state == "after-delimiter":
            end = buffer.find(b"\r\n")
            if end < 0:
                if len(buffer) > 1024:
                    raise MultipartError("malformed multipart delimiter line")
                if buffer.startswith(b"--"):
                    self._state = "done"
                    return len(buffer)
                return None
            line = buffer[:end]
            if line.startswith(b"--"):
                self._state = "done"
                return len(buffer)
            if line.strip(b" \t"):
                raise MultipartError("malformed multipart delimiter line")
            self._state = "headers"
            return end + 2
        if self._state == "headers":
            end = buffer.find(b"\r\n\r\n")
            if buffer.startswith(b"\r\n"):
                end, skip = 0, 2
            elif end >= 0:
                skip = end + 4
            else:
                if len(buffer) > _MAX_HEADER_BYTES:
                    raise MultipartError("multipart part headers too long")
                return None
            self._sink.begin(_parse_headers(buffer[:end]))
            self.parts += 1
            self._state = "body"
            return skip
        if self._state == "body":
            index = buffer.find(self._delimiter)
            if index >= 0:
                if index:
                    self._sink.data(memoryview(buffer)[:index])
                self._sink.end()
                self._state = "after-delimiter"
                return index + len(self._delimiter)
            safe = len(buffer) - (len(self._delimiter) - 1)
            if safe > 0:
                self._sink.data(memoryview(buffer)[:safe])
                return safe
            return None
        # done: ignore the epilogue
        return len(buffer) or None


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in block.split(b"\r\n"):
        if not raw:
            continue
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep or not name.strip():
            raise MultipartError("malformed multipart part header")
        headers[name.strip().lower()] = value.strip()
    return headers


class DicomFileSink:
    """Writes each ``application/dicom`` part to ``dest/<sha256>.dcm`` via a temporary file.

    Each part is a :class:`~tftt.pacs.hashed_file.HashedFile`: written and hashed as its chunks
    arrive, so memory stays bounded whatever the part size. Call :meth:`close` when done (it
    also removes an unfinished part's temporary file).

    Raises (from the parser callbacks):
        MultipartError: a part is not ``application/dicom``, or lacks the DICM prefix.
        OSError: the destination cannot be written.
    """

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.files: list[Path] = []
        self.total_bytes = 0
        self._file: HashedFile | None = None
        self._head = b""

    def begin(self, headers: Mapping[str, str]) -> None:
        media_type, _ = content_type_params(headers.get("content-type", "application/dicom"))
        if media_type != "application/dicom":
            raise MultipartError("a retrieved part is not application/dicom")
        self.abort()
        self._file = HashedFile(self.dest)
        self._head = b""

    def data(self, chunk: memoryview) -> None:
        assert self._file is not None
        if len(self._head) < _DICM_OFFSET + 4:
            self._head += bytes(chunk[: _DICM_OFFSET + 4 - len(self._head)])
        self._file.write(chunk)

    def end(self) -> None:
        part, self._file = self._file, None
        assert part is not None
        if self._head[_DICM_OFFSET:] != b"DICM":
            part.discard()
            raise MultipartError("a retrieved part is not a DICOM file (no DICM prefix)")
        self.files.append(part.commit())
        self.total_bytes += part.size

    def abort(self) -> None:
        """Remove the temporary file of an unfinished part."""
        if self._file is not None:
            part, self._file = self._file, None
            part.discard()

    def close(self) -> None:
        """Abort any unfinished part."""
        self.abort()

    def __enter__(self) -> DicomFileSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def new_boundary() -> str:
    """A random boundary that will not occur in DICOM data in practice."""
    return f"tftt-{secrets.token_hex(16)}"


def multipart_body(
    files: Sequence[Path], boundary: str, content_type: str = "application/dicom"
) -> tuple[int, Iterator[bytes]]:
    """``(length, chunks)`` of a ``multipart/related`` body made of the files' bytes.

    The files are read lazily, 1 MiB at a time, while the body is sent.

    Raises:
        OSError: a file cannot be read (at call time for its size, or while streaming).
    """
    head = f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode("latin-1")
    tail = f"--{boundary}--\r\n".encode("latin-1")
    sizes = [Path(f).stat().st_size for f in files]
    length = sum(len(head) + size + 2 for size in sizes) + len(tail)

    def chunks() -> Iterator[bytes]:
        for path, size in zip(files, sizes, strict=True):
            yield head
            sent = 0
            with Path(path).open("rb") as handle:
                while block := handle.read(_CHUNK):
                    sent += len(block)
                    yield block
            if sent != size:
                raise OSError("a file changed size while it was being sent")
            yield b"\r\n"
        yield tail

    return length, chunks()
