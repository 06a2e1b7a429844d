"""The ``mirc`` target against :mod:`tests.publish.tfs_standin`, a STAND-IN for the RSNA MIRC
TFS that reproduces the responses documented in ``shared/notes/mirc-tfs.md`` (the TFS itself
cannot be installed by the tests) and checks every request's method, path, auth and content
type."""

from __future__ import annotations

import base64
import logging
import pickle
from collections.abc import Iterator
from xml.etree import ElementTree as ET

import httpx
import pytest
from pydantic import SecretStr

from tests.publish.conftest import CASE_ID
from tests.publish.tfs_standin import TfsStandIn, User
from tftt.errors import (
    ConfigurationError,
    TargetError,
    TargetRejectedError,
    TargetUnavailableError,
    TfttError,
    UnsupportedInputError,
)
from tftt.publish import registry
from tftt.publish.base import PublicationReceipt, PublicationTarget, PublishableCase
from tftt.publish.mirc import MircAddress, MircTarget, addresses_in
from tftt.publish.mircdoc import DOCUMENT_NAME
from tftt.settings import MircSettings, PublishSettings, Settings

PASSWORD = "pw-Teacher-5ecret"
OTHER_PASSWORD = "pw-Other-5ecret"
SECRETS = (
    PASSWORD,
    OTHER_PASSWORD,
    "pw-Wrong-5ecret",
    *(
        base64.b64encode(f"{u}:{p}".encode()).decode()
        for u, p in (("teacher", PASSWORD), ("other", OTHER_PASSWORD))
    ),
)


@pytest.fixture
def tfs() -> Iterator[TfsStandIn]:
    standin = TfsStandIn(
        users={
            "teacher": User(PASSWORD, frozenset({"author", "publisher"})),
            "other": User(OTHER_PASSWORD, frozenset({"author", "publisher"})),
            "writer": User("pw-writer", frozenset({"author"})),
            "reader": User("pw-reader", frozenset()),
        }
    ).start()
    try:
        yield standin
    finally:
        standin.stop()
    assert standin.violations == []


def _target(tfs: TfsStandIn, user: str = "teacher", password: str = PASSWORD, **extra: object) -> MircTarget:
    options: dict[str, object] = {"timeout_seconds": 5, **extra}
    settings = MircSettings(url=tfs.url, username=user, password=SecretStr(password), **options)
    return MircTarget(settings)


def _only_document(tfs: TfsStandIn) -> tuple[str, ET.Element]:
    assert len(tfs.documents) == 1
    directory, document = next(iter(tfs.documents.items()))
    return directory, ET.fromstring(document.xml)


def _assert_no_secret(error: BaseException) -> None:
    # no chained third-party exception (an httpx error holds the request and its headers)
    assert error.__cause__ is None and error.__context__ is None
    for text in (str(error), repr(error), repr(error.args), repr(vars(error))):
        for secret in SECRETS:
            assert secret not in text


# --------------------------------------------------------------------------------------------


def test_target_is_registered_and_checks_its_settings(tfs: TfsStandIn) -> None:
    mirc = MircSettings(url=tfs.url, username="teacher", password=SecretStr(PASSWORD))
    target = registry.make_target("mirc", Settings(publish=PublishSettings(mirc=mirc)))
    assert isinstance(target, MircTarget) and isinstance(target, PublicationTarget)
    assert "mirc" in registry.available_targets()
    assert PASSWORD not in repr(target)
    bad = [
        MircSettings(),
        MircSettings(url=tfs.url, username="teacher"),
        MircSettings(url="ftp://host", username="teacher", password=SecretStr(PASSWORD)),
        MircSettings(url=f"http://teacher:{PASSWORD}@127.0.0.1:1", username="t", password=SecretStr("x")),
        MircSettings(url=tfs.url, ssid="../x", username="teacher", password=SecretStr(PASSWORD)),
        MircSettings(url=tfs.url, username="a b", password=SecretStr(PASSWORD)),
    ]
    for settings in bad:
        with pytest.raises(ConfigurationError) as info:
            MircTarget(settings)
        _assert_no_secret(info.value)
    assert tfs.requests == []


def test_publish_submits_the_zip_and_parses_the_address(
    tfs: TfsStandIn, sample_case: PublishableCase
) -> None:
    receipt = _target(tfs, public_default=True).publish(sample_case)
    directory, root = _only_document(tfs)
    address = f"/storage/ss1/docs/{directory}/{DOCUMENT_NAME}"
    assert receipt.target == "mirc" and receipt.case_id == CASE_ID
    assert receipt.remote_ref == tfs.url + address
    assert receipt.details == {
        "address": address,
        "updated": False,
        "indexed": True,
        "public": True,
        "images": 3,
        "frames": 5,
        "zip_bytes": tfs.requests[0].content_length,
    }
    [request] = tfs.requests
    assert (request.method, request.target, request.user) == ("POST", "/submit/ss1?suppress", "teacher")
    assert request.content_type == "application/x-zip-compressed"
    # what the TFS stored: the document and every file it references, as sent
    stored = tfs.documents[directory]
    assert root.findtext("title") == "Pneumothorax after line placement"
    assert root.findtext("authorization/owner") == "teacher"
    assert root.findtext("authorization/read") == "*"
    referenced = {n.get("src") for n in root.iter() if n.get("src")}
    assert referenced | {DOCUMENT_NAME} == set(stored.files)
    assert stored.files["img-001.dcm"] == sample_case.images[0].dicom.read_bytes()
    # and it can be read back over HTTP
    with httpx.Client(auth=("teacher", PASSWORD)) as client:
        assert client.get(receipt.remote_ref).status_code == 200
        assert client.get(f"{tfs.url}/storage/ss1/docs/{directory}/img-002-03.jpg").content == (
            sample_case.images[1].frames[1].jpeg.read_bytes()
        )


def test_publishing_again_with_the_receipt_updates_in_place(
    tfs: TfsStandIn, sample_case: PublishableCase
) -> None:
    target = _target(tfs)
    first = target.publish(sample_case)
    corrected = sample_case.model_copy(
        update={
            "metadata": {**sample_case.metadata, "title": "Corrected title"},
            "images": sample_case.images[:1],
        }
    )
    second = target.publish(corrected, first)
    assert second.remote_ref == first.remote_ref
    assert second.details["updated"] is True and second.details["images"] == 1
    directory, root = _only_document(tfs)  # no duplicate
    assert root.findtext("title") == "Corrected title"
    assert set(tfs.documents[directory].files) == {
        DOCUMENT_NAME, "img-001-01.jpg", "img-001-01-icon.jpg", "img-001-01-ann.jpg", "img-001.dcm",
    }  # fmt: skip
    assert [r.target for r in tfs.requests] == [
        "/submit/ss1?suppress",
        f"/submit/ss1/docs/{directory}/{DOCUMENT_NAME}?suppress",
    ]
    assert all(r.content_type == "application/x-zip-compressed" for r in tfs.requests)


def test_private_case_and_an_author_without_publisher_role(
    tfs: TfsStandIn, sample_case: PublishableCase
) -> None:
    private = sample_case.model_copy(update={"metadata": {**sample_case.metadata, "public": False}})
    receipt = _target(tfs, public_default=True).publish(private)
    assert receipt.details["public"] is False
    _, root = _only_document(tfs)
    assert not (root.findtext("authorization/read") or "").strip()
    tfs.documents.clear()
    receipt = _target(tfs, "writer", "pw-writer", public_default=True).publish(sample_case)
    assert receipt.details["indexed"] is False  # stored, but waits for a publisher
    _, root = _only_document(tfs)
    assert root.findtext("authorization/owner") == "writer"
    assert "*" not in (root.findtext("authorization/read") or "")


def test_wrong_password_is_rejected(tfs: TfsStandIn, sample_case: PublishableCase) -> None:
    with pytest.raises(TargetRejectedError, match="TFS rejected the credentials") as info:
        _target(tfs, password="pw-Wrong-5ecret").publish(sample_case)
    assert not info.value.retryable and info.value.code == "mirc-credentials"
    assert tfs.documents == {} and tfs.requests[0].user is None
    _assert_no_secret(info.value)


def test_user_without_author_role_is_redirected_to_query(
    tfs: TfsStandIn, sample_case: PublishableCase
) -> None:
    with pytest.raises(TargetRejectedError, match="lacks the author role") as info:
        _target(tfs, "reader", "pw-reader").publish(sample_case)
    assert info.value.code == "mirc-not-author"
    tfs.submission_enabled = False
    with pytest.raises(TargetRejectedError, match="does not accept submissions"):
        _target(tfs).publish(sample_case)
    assert tfs.documents == {}


def test_stopped_server_is_unavailable(tfs: TfsStandIn, sample_case: PublishableCase) -> None:
    target = _target(tfs)
    receipt = target.publish(sample_case)
    tfs.stop()
    for call in (lambda: target.publish(sample_case), lambda: target.take_down(CASE_ID, receipt)):
        with pytest.raises(TargetUnavailableError, match="cannot be reached") as info:
            call()
        assert info.value.retryable
        _assert_no_secret(info.value)


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_unavailable(tfs: TfsStandIn, sample_case: PublishableCase, status: int) -> None:
    tfs.fail_status = status
    with pytest.raises(TargetUnavailableError, match=str(status)) as info:
        _target(tfs).publish(sample_case)
    assert info.value.retryable and info.value.code == "mirc-unavailable"


def test_timeout_is_unavailable(tfs: TfsStandIn, sample_case: PublishableCase) -> None:
    tfs.delay_seconds = 1.0
    with pytest.raises(TargetUnavailableError, match="timed out") as info:
        _target(tfs, timeout_seconds=0.2).publish(sample_case)
    assert info.value.code == "mirc-timeout"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("The zip file was received and unpacked successfully:<br/>The site index has been "
         "updated.<br/>", ""),
        ("<html><body>Welcome</body></html>", ""),
        ("The zip file was received and unpacked successfully:<br/>@/storage/ss2/docs/"
         "20240101120000001/MIRCdocument.xml<br/>", ""),
        ("There was a problem unpacking the posted file.<br/>", "could not unpack"),
        ("The zip file was unpacked successfully, but it did not contain a MIRCdocument file to "
         "index.<br/>The submission was deleted.<br/>", "held no MIRCdocument"),
    ],
)  # fmt: skip
def test_a_body_without_an_address_is_a_failure(
    tfs: TfsStandIn, sample_case: PublishableCase, body: str, reason: str
) -> None:
    tfs.body_override = body
    with pytest.raises(TargetRejectedError, match="without a document address") as info:
        _target(tfs).publish(sample_case)
    assert info.value.code == "mirc-no-address" and reason in str(info.value)


def test_an_update_without_the_phrase_is_a_failure(tfs: TfsStandIn, sample_case: PublishableCase) -> None:
    target = _target(tfs)
    first = target.publish(sample_case)
    address = first.details["address"]
    tfs.body_override = f"The zip file was received and unpacked successfully:<br/>@{address}<br/>"
    with pytest.raises(TargetRejectedError, match="did not confirm the update") as info:
        target.publish(sample_case, first)
    assert info.value.code == "mirc-not-updated"
    tfs.body_override = f"The document has been updated.<br/>@{address[:-4]}-2.xml<br/>"
    with pytest.raises(TargetRejectedError, match="did not confirm the update"):
        target.publish(sample_case, first)


def test_an_update_of_someone_elses_document_leaves_no_stray_copy(
    tfs: TfsStandIn, sample_case: PublishableCase
) -> None:
    theirs = _target(tfs, "other", OTHER_PASSWORD).publish(sample_case)
    before = dict(tfs.documents)
    mine = theirs.model_copy()  # a receipt naming a document this user does not own
    with pytest.raises(TargetRejectedError, match="stored a new document instead") as info:
        _target(tfs).publish(sample_case, mine)
    assert "the copy was deleted" in str(info.value) and info.value.code == "mirc-not-updated"
    assert tfs.documents == before  # the TFS's silent new copy was removed again
    methods = [(r.method, r.target.split("/")[1:3]) for r in tfs.requests[1:]]
    assert methods == [
        ("POST", ["submit", "ss1"]),
        ("GET", ["storage", "ss1"]),  # is the old one still there? yes
        ("GET", ["storage", "delete"]),  # so remove the copy
    ]


def test_an_update_of_a_vanished_document_stores_it_anew(
    tfs: TfsStandIn, sample_case: PublishableCase
) -> None:
    target = _target(tfs)
    first = target.publish(sample_case)
    tfs.documents.clear()  # deleted on the TFS by hand
    second = target.publish(sample_case, first)
    directory, _ = _only_document(tfs)
    assert second.remote_ref == f"{tfs.url}/storage/ss1/docs/{directory}/{DOCUMENT_NAME}"
    assert second.remote_ref != first.remote_ref and second.details["updated"] is False


def test_take_down_deletes_and_confirms(tfs: TfsStandIn, sample_case: PublishableCase) -> None:
    target = _target(tfs)
    receipt = target.publish(sample_case)
    directory = next(iter(tfs.documents))
    target.take_down(CASE_ID, receipt)
    assert tfs.documents == {}
    docref = f"ss1/docs/{directory}/{DOCUMENT_NAME}"
    assert [(r.method, r.target, r.user) for r in tfs.requests[1:]] == [
        ("GET", f"/storage/delete/{docref}", "teacher"),
        ("GET", f"/storage/{docref}", "teacher"),
    ]
    target.take_down(CASE_ID, receipt)  # already gone: <notok/>, then 404 confirms
    assert len(tfs.requests) == 5
    with httpx.Client(auth=("teacher", PASSWORD)) as client:
        assert client.get(receipt.remote_ref).status_code == 404


def test_take_down_not_confirmed_is_a_failure(tfs: TfsStandIn, sample_case: PublishableCase) -> None:
    target = _target(tfs)
    receipt = target.publish(sample_case)
    tfs.ignore_deletes = True
    with pytest.raises(TargetRejectedError, match="still there") as info:
        target.take_down(CASE_ID, receipt)
    assert info.value.code == "mirc-delete-unconfirmed" and len(tfs.documents) == 1


def test_take_down_by_someone_else_is_refused(tfs: TfsStandIn, sample_case: PublishableCase) -> None:
    receipt = _target(tfs, "other", OTHER_PASSWORD).publish(sample_case)
    private = _target(tfs, "other", OTHER_PASSWORD)
    with pytest.raises(TargetRejectedError, match="refused to delete") as info:
        _target(tfs).take_down(CASE_ID, receipt)
    assert info.value.code == "mirc-delete-refused" and len(tfs.documents) == 1
    # a private document answers 302 to a login for others: still there, still refused
    private.publish(sample_case.model_copy(update={"metadata": {"title": "p", "public": False}}), receipt)
    with pytest.raises(TargetRejectedError, match="refused to delete"):
        _target(tfs).take_down(CASE_ID, receipt)
    assert len(tfs.documents) == 1


def test_receipts_of_other_cases_or_targets_are_refused(
    tfs: TfsStandIn, sample_case: PublishableCase
) -> None:
    target = _target(tfs)
    receipt = target.publish(sample_case)
    wrong = [
        receipt.model_copy(update={"case_id": "c-0000000000000001"}),
        receipt.model_copy(update={"target": "folder"}),
        receipt.model_copy(update={"remote_ref": tfs.url + "/storage/ss1/docs/../../etc/x.xml"}),
        receipt.model_copy(update={"remote_ref": ""}),
    ]
    count = len(tfs.requests)
    for bad in wrong:
        with pytest.raises(UnsupportedInputError):
            target.take_down(CASE_ID, bad)
        with pytest.raises(UnsupportedInputError):
            target.publish(sample_case, bad)
    assert len(tfs.requests) == count  # nothing was sent


def test_requests_go_to_the_configured_server_only(tfs: TfsStandIn, sample_case: PublishableCase) -> None:
    """A stored address names a library and directory; the host always comes from settings."""
    target = _target(tfs)
    receipt = target.publish(sample_case)
    moved = receipt.model_copy(
        update={"remote_ref": "http://elsewhere.invalid" + str(receipt.details["address"])}
    )
    target.take_down(CASE_ID, moved)
    assert tfs.documents == {}


def test_errors_pickle_and_hold_no_password(
    tfs: TfsStandIn, sample_case: PublishableCase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[TfttError] = []
    good = _target(tfs)
    receipt = good.publish(sample_case)
    for call in (
        lambda: _target(tfs, password="pw-Wrong-5ecret").publish(sample_case),
        lambda: _target(tfs, "reader", "pw-reader").publish(sample_case),
        lambda: _target(tfs, "other", OTHER_PASSWORD).take_down(CASE_ID, receipt),
    ):
        with pytest.raises(TargetError) as info:
            call()
        errors.append(info.value)
    tfs.fail_status = 502
    with pytest.raises(TargetUnavailableError) as unavailable:
        good.publish(sample_case, receipt)
    errors.append(unavailable.value)
    tfs.stop()
    with pytest.raises(TargetUnavailableError) as stopped:
        good.take_down(CASE_ID, receipt)
    errors.append(stopped.value)
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error) and copy.code == error.code
        assert copy.retryable == error.retryable
        _assert_no_secret(error)
    for secret in SECRETS:
        assert secret not in caplog.text


def test_addresses_in_answers() -> None:
    body = (
        "The document has been updated.<br/>The zip file was received and unpacked "
        "successfully:<br/>@/storage/ss1/docs/20240101120000123/MIRCdocument.xml<br/>"
        "The site index has been updated.<br/>"
    )
    assert addresses_in(body) == [MircAddress("ss1", "20240101120000123", "MIRCdocument.xml")]
    assert addresses_in(body.replace("<br/>", "|")) == addresses_in(body)
    assert addresses_in("@/storage/ss1/docs/../MIRCdocument.xml") == []
    assert addresses_in("@/storage/ss1/docs/2024/x.xml.evil") == []
    address = MircAddress.parse("http://h:1/mirc/storage/ss1/docs/20240101120000123/MIRCdocument.xml")
    assert address.path == "/storage/ss1/docs/20240101120000123/MIRCdocument.xml"
    assert address.docref == "docs/20240101120000123/MIRCdocument.xml"
    receipt = PublicationReceipt(target="mirc", case_id=CASE_ID, remote_ref=address.path)
    assert MircAddress.parse(receipt.remote_ref) == address


def test_the_reviewers_public_choice_reaches_the_document(tfs: TfsStandIn, sample_case: PublishableCase) -> None:
    """Regression: ``public`` could only be set by hand in the metadata dict; the review decision's
    TeachingMetadata had no such field, so every case took the site default."""
    from tftt.redaction_spec import TeachingMetadata

    for choice, expected in ((False, False), (True, True), (None, False)):
        metadata = TeachingMetadata(title="A case", public=choice).model_dump(mode="json")
        case = sample_case.model_copy(update={"metadata": metadata})
        receipt = _target(tfs, public_default=False).publish(case)
        assert receipt.details["public"] is expected
        tfs.documents.clear()
