"""Received C-STORE datasets streamed to ``<sha256>.dcm`` files as their fragments arrive.

Used by :class:`~tftt.pacs.dimse.DimseClient` for C-GET (TFTT requests, the PACS sends C-STORE
on the same association) and for C-MOVE (the PACS connects to TFTT's C-STORE SCP).

Why not pynetdicom's default: pynetdicom 3.0 assembles a received dataset in memory (a
``BytesIO`` of the whole instance) and only then calls the ``EVT_C_STORE`` handler, which had to
copy it again (``event.encoded_dataset()``), hash it and write it, while the PACS waited for the
C-STORE response before sending the next instance. For a 250 MB instance that is about 750 MB
of memory and a second of work during which nothing is received. pynetdicom's own streaming
switch, ``_config.STORE_RECV_CHUNKED_DATASET``, is process-wide (it changes every association
in the process, including other code's), writes to the system temporary folder (a copy when
that is another file system) and flushes after every fragment.

How: :class:`StoreReceiver` gives the handlers to bind to an association (``associate`` or
``start_server``). Its ``EVT_CONN_OPEN`` handler, which runs before any data can arrive, makes
two changes to that one association only:

- its DIMSE service provider becomes a :class:`_StreamingDimse`, whose ``receive_primitive``
  (called by the DUL thread for each P-DATA) writes the data set fragments of a C-STORE request
  straight to a :class:`~tftt.pacs.hashed_file.HashedFile` in the destination; pynetdicom
  completes the request with an empty data set, and the ``EVT_C_STORE`` handler commits the
  file the DUL thread finished for that message;
- its DUL reads P-DATA-TF PDUs with a :class:`_PDataReader`, which skips pynetdicom's per-PDU
  decoding, event queue and state machine while the association is established (they cost
  more CPU than everything else at 16 KiB per PDU) and hands every other PDU to pynetdicom.

pynetdicom still does everything else: association negotiation, command sets, other messages,
the state machine, the C-STORE response, release and abort.

The file is byte-identical to pynetdicom's ``Event.encoded_dataset()``: a zero preamble,
``DICM``, the file meta of ``pynetdicom.dsutils.create_file_meta`` (SOP class and instance of the
request, the context's transfer syntax, pynetdicom's implementation UID and version), then the
data set bytes as received. ``tests/pacs/test_dimse_receive.py`` checks this against pynetdicom
itself, so a pynetdicom release that changes any of these internals fails a test.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydicom.uid import UID
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import create_file_meta, encode_file_meta
from pynetdicom.dul import DULServiceProvider
from pynetdicom.events import EventHandlerType
from pynetdicom.pdu_primitives import P_DATA

from tftt.errors import TargetError
from tftt.pacs.base import RetrieveResult
from tftt.pacs.hashed_file import HashedFile

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
PROCESSING_FAILURE = 0x0110

_P_DATA_TF = 0x04
_PDU_HEADER = struct.Struct(">BBL")  # type, reserved, length (PS3.8 9.3.1)
_INITIAL_BUFFER = 64 * 1024
_MAX_BUFFER = 16 * 1024 * 1024  # larger PDUs (TFTT proposes at most 4 MiB) go to pynetdicom
_READ_BUDGET = 1 << 20  # bytes read per call before the reactor gets control back
_DONTWAIT = int(getattr(socket, "MSG_DONTWAIT", 0))  # else: select() before each further PDU
_PEEK = int(socket.MSG_PEEK)
_PEEK_NOWAIT = _PEEK | _DONTWAIT
_COMMAND = 0x01  # message control header bits (PS3.8 E.2): command, not data set
_LAST = 0x02  # last fragment


class StreamingNotInstalledError(RuntimeError):
    """pynetdicom delivered a C-STORE that did not go through the streaming receiver."""


@dataclass
class _Received:
    """A data set the DUL thread finished receiving, waiting for its ``EVT_C_STORE``."""

    sop_instance_uid: str
    file: HashedFile | None
    error: OSError | None = None


class _StreamingDimse(DIMSEServiceProvider):
    """A DIMSE provider that streams C-STORE request data sets to files (see module doc)."""

    def __init__(self, assoc: Association, dest: Path) -> None:
        super().__init__(assoc)
        self._dest = dest
        self._lock = threading.Lock()
        self._closed = False
        self._open: _Received | None = None
        self._open_id: int | None = None
        self._done: dict[int, _Received] = {}
        self.reader: _PDataReader | None = None

    # -- DUL thread ----------------------------------------------------------------------
    def receive_primitive(self, primitive: P_DATA) -> None:
        """pynetdicom's entry point (FSM action DT-2, or AR-6 while releasing)."""
        self.receive_pdvs(primitive.presentation_data_value_list, primitive)

    def receive_pdvs(
        self, pdvs: Sequence[tuple[int, bytes | memoryview]], primitive: P_DATA | None = None
    ) -> None:
        """Take the PDVs of one P-DATA-TF PDU, in order.

        Data set fragments of a streamed C-STORE go to its file (they may be views of a buffer
        that is reused afterwards: they are written before this returns); everything else goes
        to pynetdicom, as one P-DATA primitive per PDV (``primitive`` itself when it has only
        one).
        """
        for context_id, data in pdvs:
            header = data[0]
            if self._open is not None and not header & _COMMAND:
                self._fragment(data, header)
                if header & _LAST:
                    # pynetdicom completes the message (with an empty data set) and queues it.
                    super().receive_primitive(_p_data(context_id, bytes([header])))
                continue
            if primitive is not None and len(pdvs) == 1:
                super().receive_primitive(primitive)
            else:
                super().receive_primitive(_p_data(context_id, bytes(data)))
            message = self.message
            if header & (_COMMAND | _LAST) == _COMMAND | _LAST and isinstance(message, C_STORE_RQ):
                self._begin(context_id, message)

    def _begin(self, context_id: int, message: C_STORE_RQ) -> None:
        """The command set of a C-STORE request with a data set is complete: open its file."""
        command = message.command_set
        received = _Received(str(command.AffectedSOPInstanceUID), None)
        self._open, self._open_id = received, int(command.MessageID)
        syntax = next((c.transfer_syntax[0] for c in self.assoc.accepted_contexts
                       if c.context_id == context_id), None)
        if syntax is None:
            return  # pynetdicom refuses it (0x0122) without calling EVT_C_STORE; data dropped
        try:
            received.file = HashedFile(self._dest)
            received.file.write(_file_head(command, UID(syntax)))
        except OSError as exc:
            self._fail(received, exc)

    def _fragment(self, data: bytes | memoryview, header: int) -> None:
        received = self._open
        assert received is not None
        if received.file is not None:
            try:
                received.file.write(memoryview(data)[1:])
                if header & _LAST:
                    received.file.finish()
            except OSError as exc:
                self._fail(received, exc)
            except ValueError:  # discarded by close() when the connection went away
                self._fail(received, OSError("the association closed while receiving"))
        if header & _LAST:
            message_id, self._open, self._open_id = self._open_id, None, None
            assert message_id is not None
            with self._lock:
                if self._closed:
                    self._discard(received)
                    return
                self._discard(self._done.pop(message_id, None))
                self._done[message_id] = received

    @staticmethod
    def _fail(received: _Received, exc: OSError) -> None:
        if received.file is not None:
            received.file.discard()
        received.file, received.error = None, exc

    @staticmethod
    def _discard(received: _Received | None) -> None:
        if received is not None and received.file is not None:
            received.file.discard()

    # -- other threads -------------------------------------------------------------------
    def take(self, message_id: int) -> _Received | None:
        """The finished data set of C-STORE request ``message_id`` (once)."""
        with self._lock:
            return self._done.pop(message_id, None)

    def close(self) -> None:
        """Drop whatever was received but not taken (temporary files only). Idempotent."""
        with self._lock:
            self._closed = True
            pending, self._done = list(self._done.values()), {}
            if self._open is not None:  # the connection closed in the middle of a data set
                pending.append(self._open)
        for received in pending:
            self._discard(received)


class _PDataReader:
    """Reads P-DATA-TF PDUs for one association without pynetdicom's per-PDU machinery.

    Replaces that association's ``DULServiceProvider._read_pdu_data`` (the reactor calls it
    when the socket is readable). pynetdicom reads a PDU in 4 KiB ``recv`` calls, copies it
    three times, decodes it into objects, and passes it through the event queue and the state
    machine, whose only action for a P-DATA-TF in state Sta6 (association established) is DT-2:
    hand the PDVs to the DIMSE provider. PACS commonly send 16 KiB PDUs, so that is about 30
    000 PDUs and 1.5 s of CPU per 500 MB. This reader does DT-2 itself: while the state is
    Sta6 with no event waiting, it peeks at the next PDU header, reads each P-DATA-TF PDU with
    one ``recv_into`` into a reused buffer and gives its PDVs to
    :meth:`_StreamingDimse.receive_pdvs`, for as long as PDUs are waiting (up to about 1 MiB per
    call; the next header is peeked without blocking, so the reactor is never held waiting).
    Anything else (another PDU type, another state, TLS, an oversized PDU) goes to pynetdicom's
    own method untouched. The notification events ``EVT_DATA_RECV`` and ``EVT_PDU_RECV`` are
    not triggered for the P-DATA-TF PDUs read here (TFTT binds neither).
    """

    def __init__(self, dul: DULServiceProvider, provider: _StreamingDimse) -> None:
        self._dul = dul
        self._provider = provider
        self._pynetdicom_read = dul._read_pdu_data
        self._buffer = bytearray(_INITIAL_BUFFER)
        self._head = bytearray(_PDU_HEADER.size)
        self.pdus = 0  # P-DATA-TF PDUs read here (tests check the fast path is in use)

    def read(self) -> None:
        dul = self._dul
        budget = _READ_BUDGET
        first = True  # the reactor saw the socket readable; later PDUs may not be there yet
        while True:
            sock = dul.socket
            raw = None if sock is None else sock.socket
            if (sock is None or raw is None or isinstance(raw, ssl.SSLSocket)
                    or dul.state_machine.current_state != "Sta6" or not dul.event_queue.empty()
                    or (not first and not _DONTWAIT and not sock.ready)):
                break
            head = self._head
            try:
                peeked = raw.recv_into(head, _PDU_HEADER.size, _PEEK if first else _PEEK_NOWAIT)
            except OSError:  # including BlockingIOError: nothing waiting
                break
            if peeked < _PDU_HEADER.size or head[0] != _P_DATA_TF:
                break
            length = _PDU_HEADER.unpack(head)[2]
            if length > _MAX_BUFFER:
                break
            if _PDU_HEADER.size + length > len(self._buffer):
                self._buffer = bytearray(_PDU_HEADER.size + length)
            whole = memoryview(self._buffer)[: _PDU_HEADER.size + length]
            try:
                complete = _recv_exact(raw, whole)
            except OSError:
                complete = False
            if not complete:
                dul.event_queue.put("Evt17")  # transport closed, as pynetdicom reports it
                return
            pdvs = _split_pdvs(whole[_PDU_HEADER.size :])
            if pdvs is None:
                dul.event_queue.put("Evt19")  # invalid PDU, as pynetdicom reports it
                return
            self.pdus += 1
            self._provider.receive_pdvs(pdvs)
            first = False
            budget -= length
            if budget <= 0:
                return
        if first:
            self._pynetdicom_read()  # reads (or fails to read) that PDU itself


def _recv_exact(raw: socket.socket, view: memoryview) -> bool:
    """Fill ``view`` from the socket; False if the connection closed first."""
    got = 0
    while got < len(view):
        count = raw.recv_into(view[got:])
        if not count:
            return False
        got += count
    return True


def _split_pdvs(body: memoryview) -> list[tuple[int, memoryview]] | None:
    """The (context ID, data) PDV items of a P-DATA-TF body (PS3.8 9.3.5); None if malformed."""
    items: list[tuple[int, memoryview]] = []
    offset, length = 0, len(body)
    while offset < length:
        if length - offset < 6:
            return None
        item_length = int.from_bytes(body[offset : offset + 4], "big")
        end = offset + 4 + item_length
        if item_length < 2 or end > length:
            return None
        items.append((body[offset + 4], body[offset + 5 : end]))
        offset = end
    return items


def _p_data(context_id: int, data: bytes) -> P_DATA:
    primitive = P_DATA()
    primitive.presentation_data_value_list = [[context_id, data]]  # type: ignore[list-item]
    return primitive


def _file_head(command: Any, syntax: UID) -> bytes:
    """Preamble, prefix and file meta, exactly as pynetdicom's ``Event.encoded_dataset()``."""
    meta = create_file_meta(
        sop_class_uid=UID(str(command.AffectedSOPClassUID)),
        sop_instance_uid=UID(str(command.AffectedSOPInstanceUID)),
        transfer_syntax=syntax,
    )
    return b"\x00" * 128 + b"DICM" + encode_file_meta(meta)


class StoreReceiver:
    """Receives C-STORE data sets into ``dest/<sha256>.dcm``, streaming (see module doc).

    Bind :meth:`handlers` to every association that receives (``AE.associate`` for C-GET,
    ``AE.start_server`` for C-MOVE). Thread-safe: several associations may share a receiver.
    """

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self._files: dict[str, tuple[Path, int]] = {}
        self.error: Exception | None = None
        self._lock = threading.Lock()

    def handlers(self) -> list[EventHandlerType]:
        """``evt_handlers`` for pynetdicom."""
        return [
            (evt.EVT_CONN_OPEN, self._opened),
            (evt.EVT_CONN_CLOSE, self._closed),
            (evt.EVT_C_STORE, self._stored),
        ]

    def _opened(self, event: evt.Event) -> None:
        # Before A-ASSOCIATE: no P-DATA yet, the reactor has not handed anything to DIMSE.
        assoc = event.assoc
        provider = _StreamingDimse(assoc, self.dest)
        assoc.dimse = provider
        reader = _PDataReader(assoc.dul, provider)
        assoc.dul._read_pdu_data = reader.read  # type: ignore[method-assign]
        provider.reader = reader

    @staticmethod
    def _closed(event: evt.Event) -> None:
        close_streams(event.assoc)

    def _stored(self, event: evt.Event) -> int:
        request = cast(C_STORE, event.request)
        provider = event.assoc.dimse
        if not isinstance(provider, _StreamingDimse):
            return self._failed(StreamingNotInstalledError(
                "a C-STORE arrived on an association without the streaming receiver"
            ), PROCESSING_FAILURE)
        received = provider.take(int(request.MessageID or 0))
        if received is None or received.sop_instance_uid != str(request.AffectedSOPInstanceUID):
            if received is not None and received.file is not None:
                received.file.discard()
            return self._failed(StreamingNotInstalledError(
                "a C-STORE arrived without its streamed data set"
            ), PROCESSING_FAILURE)
        if received.error is not None or received.file is None:
            return self._failed(received.error or OSError("data set not written"),
                                OUT_OF_RESOURCES)
        try:
            path = received.file.commit()
        except OSError as exc:
            return self._failed(exc, OUT_OF_RESOURCES)
        with self._lock:
            self._files[received.sop_instance_uid] = (path, received.file.size)
        return SUCCESS

    def _failed(self, exc: Exception, status: int) -> int:
        with self._lock:
            self.error = self.error or exc
        return status

    @contextlib.contextmanager
    def local_errors_first(self) -> Iterator[None]:
        """Around a retrieve: if it fails after a data set could not be written here, raise
        that local error (e.g. a full disk) rather than the PACS's answer to it (a failed
        sub-operation status, which would read as a permanent refusal by the PACS).

        Raises:
            OSError / StreamingNotInstalledError: the local error, chained to the PACS's.
        """
        try:
            yield
        except TargetError as exc:
            if self.error is not None:
                raise self.error from exc
            raise

    def result(self) -> RetrieveResult:
        """The files received, one per SOP instance.

        Raises:
            OSError: writing a received data set failed.
            StreamingNotInstalledError: pynetdicom bypassed the streaming receiver (a bug).
        """
        if self.error is not None:
            raise self.error
        with self._lock:
            entries = list(self._files.values())
        return RetrieveResult(
            files=tuple(path for path, _ in entries), total_bytes=sum(n for _, n in entries)
        )


def close_streams(assoc: Association) -> None:
    """Drop the unfinished and untaken data sets of ``assoc`` (after it ended). Idempotent."""
    provider = assoc.dimse
    if isinstance(provider, _StreamingDimse):
        with contextlib.suppress(OSError):
            provider.close()
