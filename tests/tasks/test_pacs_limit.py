"""The PACS concurrency slot: quick repeats of 503 answers (a real local HTTP server), and a
global concurrency limit on a real Prefect server (Prefect's test harness)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tasks.pacs_limit import BusyRetryTransport, held_slot, renew_until


class _Busy(BaseHTTPRequestHandler):
    """Answers 503 to the first ``busy`` requests, then 200; counts them."""

    busy = 0
    seen = 0

    def do_POST(self) -> None:
        type(self).seen += 1
        self.rfile.read(int(self.headers.get("content-length", 0)))
        status = 503 if type(self).seen <= type(self).busy else 200
        body = b'{"ok": true}'
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def busy_server() -> Iterator[tuple[str, type[_Busy]]]:
    handler = type("Busy", (_Busy,), {"busy": 0, "seen": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_busy_answer_is_asked_again_soon(busy_server):
    url, handler = busy_server
    handler.busy = 3
    with httpx.Client(transport=BusyRetryTransport(first_delay=0.02)) as client:
        start = time.perf_counter()
        answer = client.post(url, json={"names": ["pacs"]})
        elapsed = time.perf_counter() - start
    assert answer.status_code == 200
    assert handler.seen == 4  # three 503s, then the body is sent once more and accepted
    assert elapsed < 1.0  # Prefect's own client would have waited 2 s after the first one


def test_a_lasting_busy_answer_goes_back_to_the_caller(busy_server):
    url, handler = busy_server
    handler.busy = 100
    with httpx.Client(transport=BusyRetryTransport(attempts=2, first_delay=0.01)) as client:
        answer = client.post(url, json={})
    assert answer.status_code == 503
    assert handler.seen == 3  # two quick repeats, then one last request whose answer is returned


@pytest.fixture(scope="module")
def prefect_server() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def _limit(name: str, limit: int) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))


def _active(name: str) -> int:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


@pytest.mark.integration
def test_the_slot_is_held_while_the_body_runs_and_released_after(prefect_server):
    _limit("slot-a", 2)
    with held_slot("slot-a") as held:
        assert held is True
        assert _active("slot-a") == 1
    assert _active("slot-a") == 0
    with pytest.raises(RuntimeError, match="retrieval failed"), held_slot("slot-a"):
        raise RuntimeError("retrieval failed")
    assert _active("slot-a") == 0, "released when the body raises"


@pytest.mark.integration
def test_a_full_limit_makes_the_next_holder_wait(prefect_server):
    _limit("slot-b", 1)
    order: list[str] = []
    first_in, let_go = threading.Event(), threading.Event()

    def first() -> None:
        with held_slot("slot-b"):
            order.append("first in")
            first_in.set()
            let_go.wait(30)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in.wait(30)
    threading.Timer(0.5, let_go.set).start()
    with held_slot("slot-b"):
        order.append("second in")
    thread.join(30)
    assert order == ["first in", "first out", "second in"]
    assert _active("slot-b") == 0


@pytest.mark.integration
def test_a_missing_limit_lets_the_work_go_ahead(prefect_server):
    with held_slot("no-such-limit") as held:
        assert held is False


@pytest.mark.integration
def test_a_held_lease_is_renewed_and_a_lost_one_is_reported(prefect_server, caplog):
    from uuid import uuid4

    from tasks.pacs_limit import _acquire, _client

    _limit("slot-c", 1)
    with _client() as client:
        lease_id = _acquire(client, "slot-c", 60)
        assert lease_id is not None
        stop = threading.Event()
        threading.Timer(0.55, stop.set).start()
        assert renew_until(stop, lease_id, 60, every=0.1) >= 3
        client.release_concurrency_slots_with_lease(lease_id)
    stop = threading.Event()
    threading.Timer(0.25, stop.set).start()
    assert renew_until(stop, uuid4(), 60, every=0.1) == 0  # the server answers 410 Gone
    assert "could not renew the concurrency lease" in caplog.text
