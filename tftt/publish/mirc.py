"""The ``mirc`` target: an RSNA MIRC Teaching File System (TFS), through its Submit Service.

Protocol (``notes/mirc-tfs.md``, read from MIRC2's source and seen on a running TFS)::

    POST {url}/submit/{ssid}?suppress                              a new case
    POST {url}/submit/{ssid}/docs/<dir>/MIRCdocument.xml?suppress  an update by the owner
    GET  {url}/storage/delete/{ssid}/docs/<dir>/MIRCdocument.xml   delete: <ok/> or 404 <notok/>
    GET  {url}/storage/{ssid}/docs/<dir>/MIRCdocument.xml          the case; 404 once deleted

Both POSTs carry the zip of :mod:`tftt.publish.mircdoc` as ``application/x-zip-compressed``
with a ``Content-Length`` (the TFS reads exactly that many bytes; no chunked bodies), under HTTP
Basic. The success body names the document, e.g. ``...successfully:<br/>@/storage/ss1/docs/
20240101120000123/MIRCdocument.xml<br/>...``; that address, prefixed with ``url``, is the
receipt's ``remote_ref``. Requests are always made to the configured ``url``: only the library
and directory are taken from a stored address, so stored data never chooses where the
credentials go.

Idempotence: with the previous receipt the case is updated in place. The TFS answers an update
it cannot make (the user does not own the document, or it is gone) by silently storing a new
document; that is detected (no "The document has been updated."). If the previous document is
gone the new one becomes the publication; otherwise the stray copy is deleted and the update
fails. A new submission that times out after its upload may still have been stored by the TFS;
nothing in the protocol can find it again (search sees public cases only).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

import httpx

from tftt.errors import (
    ConfigurationError,
    TargetError,
    TargetRejectedError,
    TargetUnavailableError,
    UnsupportedInputError,
)
from tftt.publish.base import PublicationReceipt, PublishableCase
from tftt.publish.mircdoc import write_submission
from tftt.settings import MircSettings, Settings
from tftt.store.case_ids import check_case_id

log = logging.getLogger(__name__)

SUBMIT_CONTENT_TYPE = "application/x-zip-compressed"
UPDATED_PHRASE = "The document has been updated."
INDEXED_PHRASE = "The site index has been updated."
DELETED_ANSWER = "<ok/>"
_CHUNK = 1 << 20
_NAME = r"[A-Za-z0-9_-]{1,64}"
_FILE = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}\.xml"
_ADDRESS_IN_BODY = re.compile(rf"@(/storage/{_NAME}/docs/{_NAME}/{_FILE})(?=$|[<\s|])")
_ADDRESS_AT_END = re.compile(rf"/storage/(?P<ssid>{_NAME})/docs/(?P<directory>{_NAME})/(?P<name>{_FILE})$")
_SSID = re.compile(_NAME)


@dataclass(frozen=True)
class MircAddress:
    """Where a MIRCdocument is stored: library ``ssid``, directory and XML file name."""

    ssid: str
    directory: str
    name: str

    @classmethod
    def parse(cls, value: str) -> MircAddress:
        """The address at the end of ``value`` (a document URL or a ``/storage/...`` path).

        Raises:
            UnsupportedInputError: ``value`` does not end in a document address.
        """
        match = _ADDRESS_AT_END.search(value)
        if match is None:
            raise UnsupportedInputError("the receipt holds no MIRC document address", code="bad-receipt")
        return cls(match["ssid"], match["directory"], match["name"])

    @property
    def path(self) -> str:
        """``/storage/{ssid}/docs/{directory}/{name}``."""
        return f"/storage/{self.ssid}/{self.docref}"

    @property
    def docref(self) -> str:
        """``docs/{directory}/{name}``, the part after the library in every TFS path."""
        return f"docs/{self.directory}/{self.name}"


def addresses_in(body: str) -> list[MircAddress]:
    """The document addresses (``@/storage/...``) in a Submit Service answer, in order."""
    found: list[MircAddress] = []
    for match in _ADDRESS_IN_BODY.finditer(body):
        address = MircAddress.parse(match[1])
        if address not in found:
            found.append(address)
    return found


class MircTarget:
    """Publishes each case as one MIRCdocument on a TFS (see the module docstring)."""

    name = "mirc"

    def __init__(self, settings: MircSettings, *, client: httpx.Client | None = None) -> None:
        """``client``, if given, is used for every request (and not closed here).

        Raises:
            ConfigurationError: the URL, library, user name or password is missing or unusable.
        """
        parts = urlsplit(settings.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("publish.mirc.url must be an http(s) URL of the TFS")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise ConfigurationError(
                "publish.mirc.url must not hold credentials; set publish.mirc.username/password"
            )
        if parts.query or parts.fragment:
            raise ConfigurationError("publish.mirc.url must not have a query or fragment")
        if not _SSID.fullmatch(settings.ssid):
            raise ConfigurationError("publish.mirc.ssid must be a library id such as 'ss1'")
        if not settings.username or settings.password is None:
            raise ConfigurationError("publish.mirc.username and publish.mirc.password are needed")
        if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", settings.username):
            raise ConfigurationError("publish.mirc.username is not a plain TFS user name")
        self._settings = settings
        self._base = settings.url.rstrip("/")
        self._username = settings.username
        self._auth = httpx.BasicAuth(settings.username, settings.password.get_secret_value())
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> MircTarget:
        """The target configured in ``publish.mirc``.

        Raises:
            ConfigurationError: as the constructor.
        """
        return cls(settings.publish.mirc)

    def __repr__(self) -> str:
        return f"MircTarget(url={self._base!r}, ssid={self._settings.ssid!r})"

    def document_url(self, address: MircAddress) -> str:
        """The document's URL on the configured TFS."""
        return self._base + address.path

    def is_public(self, case: PublishableCase) -> bool:
        """The case's ``public`` metadata if it is a boolean, else ``publish.mirc.public_default``."""
        value = case.metadata.get("public")
        return value if isinstance(value, bool) else self._settings.public_default

    # ----------------------------------------------------------------------------------------

    def publish(
        self, case: PublishableCase, previous: PublicationReceipt | None = None
    ) -> PublicationReceipt:
        """Submit the case as a new document, or update ``previous`` in place.

        Raises:
            TargetRejectedError: a DICOM file is not marked as de-identified; the TFS rejected
                the credentials (401) or redirected to /query (no author role, or submission
                disabled); it answered without a document address; or it did not confirm an
                update ("The document has been updated.").
            TargetUnavailableError: the TFS cannot be reached, timed out or answered 5xx.
            UnsupportedInputError: an input file is unreadable or malformed, or ``previous``
                is another case's or target's receipt, or holds no document address.
        """
        old = self._address_of(case.case_id, previous) if previous is not None else None
        public = self.is_public(case)
        with tempfile.TemporaryFile() as zip_file:
            submission = write_submission(case, zip_file, owner=self._username, public=public)
            size = zip_file.seek(0, os.SEEK_END)
            with self._session() as client:
                if old is None:
                    body = self._post_zip(client, f"/submit/{self._settings.ssid}", zip_file, size)
                    address = self._new_address(body)
                else:
                    body = self._post_zip(client, f"/submit/{old.ssid}/{old.docref}", zip_file, size)
                    address = self._updated_address(client, old, body)
        updated = address == old
        indexed = INDEXED_PHRASE in body
        if not indexed:
            log.warning("case %s stored on the TFS but not indexed (needs a publisher)", case.case_id)
        log.info(
            "case %s %s on the TFS as %s (%d image(s), %d frame(s), %d bytes)",
            case.case_id,
            "updated" if updated else "published",
            address.path,
            len(submission.images),
            submission.frame_count,
            size,
        )
        return PublicationReceipt(
            target=self.name,
            case_id=case.case_id,
            remote_ref=self.document_url(address),
            details={
                "address": address.path,
                "updated": updated,
                "indexed": indexed,
                "public": public,
                "images": len(submission.images),
                "frames": submission.frame_count,
                "zip_bytes": size,
            },
        )

    def take_down(self, case_id: str, receipt: PublicationReceipt) -> None:
        """Delete the document, then confirm that reading it answers 404. Succeeds if it is
        already gone.

        Raises:
            UnsupportedInputError: ``case_id`` is not a case id, or the receipt is another
                case's or target's, or holds no document address.
            TargetRejectedError: the TFS refused the delete (``<notok/>``: the user is not the
                owner) or rejected the credentials, and the document is still there.
            TargetUnavailableError: the TFS cannot be reached, timed out or answered 5xx.
        """
        address = self._address_of(case_id, receipt)
        with self._session() as client:
            answer = self._request(
                client,
                "GET",
                f"/storage/delete/{address.ssid}/{address.docref}",
                action="delete",
                accept=(200, 404),
            )
            deleted = answer.status_code == 200 and DELETED_ANSWER in answer.text
            if not self._exists(client, address):
                log.info("case %s taken down from the TFS (%s answers 404)", case_id, address.path)
                return
        if deleted:
            raise TargetRejectedError(
                "the TFS answered <ok/> to the delete but the document is still there",
                code="mirc-delete-unconfirmed",
            )
        raise TargetRejectedError(
            "the TFS refused to delete the document (<notok/>): the configured user is not its "
            "owner or an administrator",
            code="mirc-delete-refused",
        )

    # ----------------------------------------------------------------------------------------

    def _address_of(self, case_id: str, receipt: PublicationReceipt) -> MircAddress:
        check_case_id(case_id)
        if receipt.case_id != case_id or receipt.target != self.name:
            raise UnsupportedInputError("the receipt belongs to another case or target", code="bad-receipt")
        return MircAddress.parse(receipt.remote_ref)

    @contextmanager
    def _session(self) -> Iterator[httpx.Client]:
        if self._client is not None:
            yield self._client
            return
        timeout = httpx.Timeout(self._settings.timeout_seconds)
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            yield client

    def _post_zip(self, client: httpx.Client, path: str, zip_file: IO[bytes], size: int) -> str:
        def chunks() -> Iterator[bytes]:
            zip_file.seek(0)
            while chunk := zip_file.read(_CHUNK):
                yield chunk

        headers = {"Content-Type": SUBMIT_CONTENT_TYPE, "Content-Length": str(size)}
        response = self._request(
            client, "POST", f"{path}?suppress", action="submission", content=chunks(), headers=headers
        )
        return response.text

    def _new_address(self, body: str) -> MircAddress:
        found = addresses_in(body)
        if len(found) != 1 or found[0].ssid != self._settings.ssid:
            raise TargetRejectedError(
                f"the TFS answered the submission without a document address{_reason(body)}",
                code="mirc-no-address",
            )
        return found[0]

    def _updated_address(self, client: httpx.Client, old: MircAddress, body: str) -> MircAddress:
        """``old`` if the TFS confirmed the update; the new document if the TFS stored one
        because ``old`` is gone.

        Raises:
            TargetRejectedError: the update was not confirmed (a stray new copy is deleted).
        """
        found = addresses_in(body)
        if UPDATED_PHRASE in body and found in ([], [old]):
            return old
        new = [address for address in found if address != old]
        if UPDATED_PHRASE in body or len(new) != 1:
            raise TargetRejectedError(
                f"the TFS did not confirm the update of {old.path}{_reason(body)}",
                code="mirc-not-updated",
            )
        if not self._exists(client, old):
            log.warning("%s is gone from the TFS; the case was stored anew", old.path)
            return new[0]
        try:
            self._request(
                client,
                "GET",
                f"/storage/delete/{new[0].ssid}/{new[0].docref}",
                action="delete",
                accept=(200,),
            )
            cleanup = "the copy was deleted"
        except TargetError:
            cleanup = f"the copy {new[0].path} could not be deleted"
        raise TargetRejectedError(
            f"the TFS stored a new document instead of updating {old.path} (the configured user "
            f"is not its owner?); {cleanup}",
            code="mirc-not-updated",
        )

    def _exists(self, client: httpx.Client, address: MircAddress) -> bool:
        """False only if reading the document answers 404 (302 to a login is 'still there')."""
        response = self._request(
            client, "GET", address.path, action="confirmation", accept=(200, 301, 302, 303, 404)
        )
        return response.status_code != 404

    def _request(
        self,
        client: httpx.Client,
        method: str,
        path: str,
        *,
        action: str,
        accept: tuple[int, ...] = (200,),
        content: Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request to the TFS; the one place where its answers become errors.

        Raises:
            TargetRejectedError: 401 (credentials), a redirect to /query (no author role or
                submission disabled), another redirect, or another 4xx.
            TargetUnavailableError: connection error, timeout, 408, 429 or 5xx.
        """
        failure: TargetUnavailableError | None = None
        try:
            response = client.request(
                method, self._base + path, content=content, headers=headers, auth=self._auth
            )
        except httpx.TimeoutException:
            failure = TargetUnavailableError(f"the TFS timed out during the {action}", code="mirc-timeout")
        except httpx.TransportError as exc:
            failure = TargetUnavailableError(
                f"the TFS cannot be reached for the {action} ({type(exc).__name__})",
                code="mirc-unreachable",
            )
        if failure is not None:
            # raised outside the handler: no __context__ holding the request and its headers
            raise failure
        status = response.status_code
        if status in accept:
            return response
        if status == 401:
            raise TargetRejectedError(
                f"TFS rejected the credentials (401 to the {action})", code="mirc-credentials"
            )
        if 300 <= status < 400:
            location = urlsplit(response.headers.get("location", "")).path.rstrip("/")
            if location == "/query":
                raise TargetRejectedError(
                    f"the TFS redirected the {action} to /query: the user lacks the author role, "
                    f"or library {self._settings.ssid} does not accept submissions",
                    code="mirc-not-author",
                )
            raise TargetRejectedError(
                f"the TFS answered the {action} with an unexpected redirect ({status})",
                code="mirc-redirect",
            )
        if status in (408, 429) or status >= 500:
            raise TargetUnavailableError(
                f"the TFS answered {status} to the {action}", code="mirc-unavailable"
            )
        raise TargetRejectedError(f"the TFS answered {status} to the {action}", code="mirc-rejected")


_KNOWN_FAILURES = (
    ("did not contain a MIRCdocument", "the zip held no MIRCdocument the TFS could parse"),
    ("problem unpacking", "the TFS could not unpack the zip"),
)


def _reason(body: str) -> str:
    """A known reason from a Submit Service answer, never the answer's own text."""
    for phrase, reason in _KNOWN_FAILURES:
        if phrase in body:
            return f" ({reason})"
    return ""
