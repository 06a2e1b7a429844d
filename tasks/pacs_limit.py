"""One slot of Prefect's global concurrency limit ``pacs``, held around every PACS read.

``prefect.concurrency.sync.concurrency`` does the same, but on a SQLite Prefect server its
request often collides with the server recording the task's own start: taking a slot reads the
limit and then writes it, a write by another connection in between makes SQLite answer
"database is locked", the server answers 503, and Prefect's client waits ``2 ** attempt``
seconds before asking again (1.7-2.3 s on about half the retrievals of ``benchmarks/case.py``).
Here the same requests go through :class:`BusyRetryTransport`, which asks again after 50 ms,
100 ms, ... when the server answers 503 (the server rolled the transaction back: nothing
changed), and hands a 503 that persists to Prefect's own retries.

The slot is leased: the lease is renewed while the slot is held, and the server frees the slot
by itself if this process dies. A full limit (423) is asked again after the server's
``Retry-After``, without a time limit, as Prefect's context manager does.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import random
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from uuid import UUID

import certifi
import httpx
from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.context import TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY

#: Global concurrency limit that protects the PACS (created by ``tftt serve``).
PACS_LIMIT = "pacs"
#: A held slot is freed by the server this long after the last renewal (renewed every half).
LEASE_SECONDS = 300.0
#: Quick attempts after a 503 before Prefect's client takes over (50 ms, doubling: 1.55 s at most).
BUSY_ATTEMPTS = 5
BUSY_FIRST_DELAY = 0.05


class BusyRetryTransport(httpx.HTTPTransport):
    """An HTTP transport that repeats a request answered 503 after a short, growing delay.

    The Prefect server answers 503 only for errors it declares retryable (a locked or lost
    database) after rolling back, so repeating any request is what Prefect's client does too,
    only sooner.
    """

    def __init__(self, *, attempts: int = BUSY_ATTEMPTS, first_delay: float = BUSY_FIRST_DELAY,
                 **kwargs: Any) -> None:
        kwargs.setdefault("retries", 3)  # as Prefect's own transport: reconnect on connection errors
        super().__init__(**kwargs)
        self.attempts = attempts
        self.first_delay = first_delay

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        delay = self.first_delay
        for _ in range(self.attempts):
            response = super().handle_request(request)
            if response.status_code != 503:
                return response
            response.read()
            response.close()
            time.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311  (timing jitter)
            delay *= 2
        return super().handle_request(request)


@functools.lru_cache(maxsize=4)
def _tls_context(skip_verify: bool, cert_file: str | None) -> ssl.SSLContext:
    """The TLS context Prefect's client would build, built once per process (building one
    loads the CA bundle: tens of milliseconds on every new client otherwise)."""
    if skip_verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=cert_file or certifi.where())


def _client() -> SyncPrefectClient:
    """A Prefect client whose requests go through :class:`BusyRetryTransport`."""
    tls = _tls_context(bool(PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value()), PREFECT_API_SSL_CERT_FILE.value())
    return get_client(sync_client=True, httpx_settings={"verify": tls, "transport": BusyRetryTransport(verify=tls)})


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _holder() -> ConcurrencyLeaseHolder | None:
    context = TaskRunContext.get()
    return ConcurrencyLeaseHolder(type="task_run", id=context.task_run.id) if context else None


def _acquire(client: SyncPrefectClient, name: str, lease_seconds: float) -> UUID | None:
    """The lease of one slot, or ``None`` when the limit does not exist.

    Raises:
        httpx.HTTPStatusError: the server refused the request (other than a full limit).
    """
    holder = _holder()
    while True:
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=[name], slots=1, mode="concurrency", lease_duration=lease_seconds, holder=holder)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 423:  # 423: every slot is taken
                raise
            time.sleep(float(exc.response.headers.get("Retry-After", 1.0)))
            continue
        body = response.json()
        return UUID(body["lease_id"]) if body.get("limits") else None


def renew_until(stop: threading.Event, lease_id: UUID, lease_seconds: float, every: float) -> int:
    """Renew the lease every ``every`` seconds until ``stop`` is set; returns how many renewals
    the server accepted. A failed renewal is logged and tried again next round (the lease is
    still valid for a while)."""
    renewed = 0
    while not stop.wait(every):
        try:
            with _client() as client:
                client.renew_concurrency_lease(lease_id, lease_seconds)
            renewed += 1
        except Exception as exc:
            logging.getLogger(__name__).warning("could not renew the concurrency lease (%s)", type(exc).__name__)
    return renewed


@contextmanager
def held_slot(name: str, *, lease_seconds: float = LEASE_SECONDS) -> Iterator[bool]:
    """Hold one slot of the global concurrency limit ``name``; yields whether a slot is held
    (``False`` when the limit does not exist: the work goes ahead, as with Prefect's
    ``strict=False``). The slot is released on exit, also when the body raises.

    Raises:
        httpx.HTTPStatusError: the Prefect server refused the request (other than a full limit).
    """
    with _client() as client:
        lease_id = _acquire(client, name, lease_seconds)
        if lease_id is None:
            _logger().warning("global concurrency limit %r does not exist; going ahead without it", name)
            yield False
            return
        stop = threading.Event()
        renewer = threading.Thread(target=contextvars.copy_context().run,  # the same Prefect API
                                   args=(renew_until, stop, lease_id, lease_seconds, lease_seconds / 2),
                                   name=f"lease-{name}", daemon=True)
        renewer.start()
        try:
            yield True
        finally:
            stop.set()
            renewer.join(timeout=10)
            try:
                client.release_concurrency_slots_with_lease(lease_id)
            except Exception as exc:  # never mask the body's own outcome; the lease expires
                _logger().warning("could not release the %r slot (%s); it is freed when its lease expires",
                                  name, type(exc).__name__)


def pacs_slot() -> AbstractContextManager[bool]:
    """:func:`held_slot` of the :data:`PACS_LIMIT`."""
    return held_slot(PACS_LIMIT)
