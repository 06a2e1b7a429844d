from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from tftt.pacs.multipart import (
    DicomFileSink,
    MultipartError,
    MultipartParser,
    boundary_of,
    multipart_body,
    new_boundary,
)


def _fake_dicom(payload: bytes) -> bytes:
    return b"\0" * 128 + b"DICM" + payload


class _Collect:
    def __init__(self) -> None:
        self.parts: list[tuple[dict[str, str], bytes]] = []
        self._current = bytearray()
        self._headers: dict[str, str] = {}

    def begin(self, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)
        self._current = bytearray()

    def data(self, chunk: memoryview) -> None:
        self._current += chunk

    def end(self) -> None:
        self.parts.append((self._headers, bytes(self._current)))


def _body(parts: list[bytes], boundary: str, preamble: bytes = b"") -> bytes:
    out = preamble
    for part in parts:
        out += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _feed(parser: MultipartParser, data: bytes, size: int) -> None:
    for start in range(0, len(data), size):
        parser.feed(data[start : start + size])
    parser.close()


# Payloads that contain near-misses of the delimiter, CRLFs and dashes.
TRICKY = [
    b"",
    b"--",
    b"\r\n--tftt-not-the-boundary\r\n",
    os.urandom(5000),
    b"\r\n" * 100 + b"--" * 50,
]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1000, 1 << 20])
def test_parser_splits_parts_whatever_the_chunking(chunk_size: int) -> None:
    boundary = new_boundary()
    body = _body(TRICKY, boundary, preamble=b"ignored preamble\r\n")
    sink = _Collect()
    _feed(MultipartParser(boundary.encode(), sink), body, chunk_size)
    assert [data for _, data in sink.parts] == TRICKY
    assert all(h["content-type"] == "application/dicom" for h, _ in sink.parts)


def test_parser_accepts_a_part_without_headers_and_an_epilogue() -> None:
    body = b"--b\r\n\r\nabc\r\n--b--\r\nepilogue with --b inside"
    sink = _Collect()
    _feed(MultipartParser(b"b", sink), body, 4)
    assert sink.parts == [({}, b"abc")]


def test_parser_reports_a_truncated_body() -> None:
    boundary = new_boundary()
    body = _body([b"x" * 100], boundary)[:-10]
    parser = MultipartParser(boundary.encode(), _Collect())
    parser.feed(body)
    with pytest.raises(MultipartError, match="ended before"):
        parser.close()


def test_parser_rejects_malformed_headers() -> None:
    parser = MultipartParser(b"b", _Collect())
    with pytest.raises(MultipartError, match="header"):
        parser.feed(b"--b\r\nno colon here\r\n\r\nabc\r\n--b--")


def test_boundary_of_reads_quoted_and_plain_boundaries() -> None:
    assert boundary_of('multipart/related; type="application/dicom"; boundary="a b"') == b"a b"
    assert boundary_of("multipart/related; boundary=xyz; type=application/dicom") == b"xyz"
    with pytest.raises(MultipartError):
        boundary_of("application/json")
    with pytest.raises(MultipartError):
        boundary_of("multipart/related")


def test_dicom_sink_names_files_by_content_hash(tmp_path: Path) -> None:
    payloads = [_fake_dicom(b"one" * 1000), _fake_dicom(b"two"), _fake_dicom(b"one" * 1000)]
    boundary = new_boundary()
    with DicomFileSink(tmp_path) as sink:
        _feed(MultipartParser(boundary.encode(), sink), _body(payloads, boundary), 777)
    expected = [tmp_path / f"{hashlib.sha256(p).hexdigest()}.dcm" for p in payloads]
    assert sink.files == expected
    assert sink.total_bytes == sum(len(p) for p in payloads)
    assert {p.read_bytes() for p in tmp_path.iterdir()} == set(payloads)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({p.name for p in expected})


def test_dicom_sink_refuses_non_dicom_parts_and_cleans_up(tmp_path: Path) -> None:
    boundary = new_boundary()
    with DicomFileSink(tmp_path) as sink, pytest.raises(MultipartError, match="not a DICOM"):
        _feed(MultipartParser(boundary.encode(), sink), _body([b"\0" * 200], boundary), 50)
    assert list(tmp_path.iterdir()) == []

    other = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}--".encode()
    )
    with DicomFileSink(tmp_path) as sink, pytest.raises(MultipartError, match="application/"):
        _feed(MultipartParser(boundary.encode(), sink), other, 10)


def test_dicom_sink_abort_removes_a_partial_part(tmp_path: Path) -> None:
    boundary = new_boundary()
    with DicomFileSink(tmp_path) as sink:
        parser = MultipartParser(boundary.encode(), sink)
        for start in range(0, 5000, 100):
            parser.feed(_body([_fake_dicom(b"x" * 10_000)], boundary)[start : start + 100])
        assert len(list(tmp_path.iterdir())) == 1  # the temporary file
    assert list(tmp_path.iterdir()) == []


def test_dicom_sink_reports_write_errors(tmp_path: Path) -> None:
    boundary = new_boundary()
    body = _body([_fake_dicom(b"x" * 100_000)], boundary)
    with DicomFileSink(tmp_path) as sink:
        parser = MultipartParser(boundary.encode(), sink)
        parser.feed(body[:300])
        assert sink._file is not None and sink._file._handle is not None
        sink._file._handle.close()  # the file "fails": every further write raises
        with pytest.raises(ValueError, match="closed file"):
            _feed(parser, body[300:], 1000)
    assert list(tmp_path.iterdir()) == []


def test_multipart_body_round_trips_through_the_parser(tmp_path: Path) -> None:
    payloads = [os.urandom(3_000_000), b"", b"small"]
    files = []
    for index, payload in enumerate(payloads):
        path = tmp_path / f"{index}.bin"
        path.write_bytes(payload)
        files.append(path)
    boundary = new_boundary()
    length, chunks = multipart_body(files, boundary)
    body = b"".join(chunks)
    assert len(body) == length
    sink = _Collect()
    _feed(MultipartParser(boundary.encode(), sink), body, 65536)
    assert [data for _, data in sink.parts] == payloads
