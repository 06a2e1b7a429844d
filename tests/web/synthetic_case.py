"""A synthetic case awaiting review, for the review page tests.

Made with the project's own generator: a burned-in ultrasound cine from
:func:`tftt.synth.studies.us_cine` rendered by :func:`tftt.pixels.preview.render_previews`
(its :class:`~tftt.synth.burnin.BurnedBox` is the ground truth of the burned-in text), on
request a CT slice from :func:`tftt.synth.studies.ct_series`, plus, on request, many small
single-frame images drawn with numpy/Pillow (for the page-time measurement; they have no
DICOM). Writes the cine's and the CT's DICOM to ``first_pass/<published uid>.dcm`` (the
server renders its "after" views and window presets from there), the workspace's
``previews/`` and ``index.json`` the way the case flow does, and the case and instance rows
through :mod:`tftt.store.cases`.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import SecretStr
from pydicom import dcmwrite
from pydicom.dataset import Dataset
from sqlalchemy.engine import Engine

from tests.web.conftest import BEARER_TOKEN, HMAC_SECRET
from tftt.pixels.preview import FramePreview, encode_jpeg, render_previews
from tftt.redaction_spec import InstanceEdits, Rectangle, RedactionSpec
from tftt.review_index import INDEX_FILE, THUMBNAIL_FILE, ReviewImage, ReviewIndex, frame_file
from tftt.settings import Settings, WebSettings
from tftt.store import cases
from tftt.store.db import CaseStatus, transact
from tftt.store.files import atomic_write_bytes, contained_path
from tftt.store.workspace import Area, CaseWorkspace
from tftt.synth.burnin import BurnedBox
from tftt.synth.canaries import make_identity
from tftt.synth.studies import ct_series, us_cine
from tftt.web.review_accounts import hash_password

REVIEWER = "dr.review"
PASSWORD = "correct horse battery staple"
SESSION_SECRET = "session-secret-for-tests-0123456789abcdef"
_counter = itertools.count(1)
_PASSWORD_HASH: str | None = None


def reviewer_hash() -> str:
    """The argon2 hash of :data:`PASSWORD` (computed once per test session)."""
    global _PASSWORD_HASH
    if _PASSWORD_HASH is None:
        _PASSWORD_HASH = hash_password(PASSWORD)
    return _PASSWORD_HASH


def review_settings(data_dir: Path, **web: object) -> Settings:
    """Settings with webhook secrets, a session secret and the one reviewer :data:`REVIEWER`."""
    values: dict[str, object] = {
        "webhook_hmac_secret": SecretStr(HMAC_SECRET),
        "webhook_bearer_token": SecretStr(BEARER_TOKEN),
        "session_secret": SecretStr(SESSION_SECRET),
        "reviewers": {REVIEWER: SecretStr(reviewer_hash())},
    }
    values.update(web)
    return Settings(data_dir=data_dir, web=WebSettings.model_validate(values))


def published_uid(*parts: int) -> str:
    """A deterministic ``2.25.<decimal>`` UID standing for a keyed-hash published UID."""
    digest = hashlib.sha256(".".join(str(p) for p in parts).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:15], "big"))


@dataclass(frozen=True)
class SyntheticCase:
    case_id: str
    workspace: CaseWorkspace
    index: ReviewIndex
    cine_uid: str
    cine_series_uid: str
    box: BurnedBox
    rows: int
    columns: int
    frames: int
    proposal: Rectangle
    ct_uid: str | None = None


def _plain_image(number: int, size: int = 96) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size]
    image = ((x * 2 + y + number * 7) % 256).astype(np.uint8)
    image[size // 3 : size // 3 + 8, 8 : 8 + (number % (size - 16))] = 255
    return image


def make_case(
    settings: Settings,
    engine: Engine,
    *,
    flow_run_id: str | None = None,
    title: str | None = "Liver cine <b>&amp; friends</b>",
    cine_frames: int = 12,
    preview_frames: int = 6,
    extra_images: int = 0,
    ct_size: int | None = None,
    seed: int = 7,
) -> SyntheticCase:
    """A case awaiting review: one burned-in US cine, optionally ``extra_images`` more
    single-frame images in a second series and a ``ct_size`` square CT slice in a third;
    ``flow_run_id`` is recorded when given."""
    n = next(_counter)
    who = make_identity(seed)
    obj = us_cine(who, frames=cine_frames, size=320)[0]
    ds = obj.dataset
    box = obj.boxes[0]
    rows, columns = int(ds.Rows), int(ds.Columns)
    study_uid = f"1.2.826.0.1.3680043.10.7777.{seed}.{n}"

    def record(session: object) -> str:
        case, _ = cases.create_or_get_case_for_study(
            session,  # type: ignore[arg-type]
            study_uid,
            None,
            "test",
            title,
        )
        cases.set_status(session, case.id, CaseStatus.AWAITING_REVIEW)  # type: ignore[arg-type]
        if flow_run_id is not None:
            cases.set_flow_run(session, case.id, flow_run_id)  # type: ignore[arg-type]
        return case.id

    case_id = transact(engine, record)
    ws = CaseWorkspace.for_settings(settings, case_id).ensure()

    cine_uid = published_uid(seed, n, 1, 1)
    cine_series = published_uid(seed, n, 1)
    previews = _write_image(ws, cine_uid, ds, preview_frames)
    proposal = Rectangle(x=0, y=rows - 20, width=120, height=20, source="device-rule")
    images = [
        ReviewImage(
            sop_instance_uid=cine_uid,
            series_uid=cine_series,
            series_number=1,
            series_description="LIVER CINE",
            instance_number=1,
            modality="US",
            rows=rows,
            columns=columns,
            frames=cine_frames,
            preview_frames=tuple(p.frame_number for p in previews),
            risk_flags=("burned-in-annotation-yes",),
            proposed=(proposal,),
        )
    ]
    infos = [
        cases.InstanceInfo(
            study_uid=published_uid(seed, n),
            series_uid=cine_series,
            sop_instance_uid=cine_uid,
            sop_class_uid=str(ds.SOPClassUID),
            rows=rows,
            columns=columns,
            frames=cine_frames,
            modality="US",
            series_number=1,
            instance_number=1,
            burned_in_annotation="YES",
            text_detected=True,
        )
    ]
    other_series = published_uid(seed, n, 2)
    for k in range(1, extra_images + 1):
        uid = published_uid(seed, n, 2, k)
        pixels = _plain_image(k)
        image_dir = ws.file(Area.PREVIEWS, uid)
        jpeg = encode_jpeg(pixels, 80)
        atomic_write_bytes(contained_path(image_dir, frame_file(1)), jpeg)
        atomic_write_bytes(contained_path(image_dir, THUMBNAIL_FILE), jpeg)
        images.append(
            ReviewImage(
                sop_instance_uid=uid,
                series_uid=other_series,
                series_number=2,
                series_description="PLAIN",
                instance_number=k,
                modality="OT",
                rows=pixels.shape[0],
                columns=pixels.shape[1],
                frames=1,
                preview_frames=(1,),
            )
        )
        infos.append(
            cases.InstanceInfo(
                study_uid=published_uid(seed, n),
                series_uid=other_series,
                sop_instance_uid=uid,
                sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
                rows=pixels.shape[0],
                columns=pixels.shape[1],
                modality="OT",
                series_number=2,
                instance_number=k,
            )
        )
    ct_uid = None
    if ct_size is not None:
        ct = ct_series(who, slices=1, size=ct_size)[0].dataset
        ct_uid = published_uid(seed, n, 3, 1)
        ct_series_uid = published_uid(seed, n, 3)
        ct_previews = _write_image(ws, ct_uid, ct, preview_frames)
        images.append(
            ReviewImage(
                sop_instance_uid=ct_uid,
                series_uid=ct_series_uid,
                series_number=3,
                series_description="AXIAL CHEST",
                instance_number=1,
                modality="CT",
                rows=ct_size,
                columns=ct_size,
                frames=1,
                preview_frames=tuple(p.frame_number for p in ct_previews),
            )
        )
        infos.append(
            cases.InstanceInfo(
                study_uid=published_uid(seed, n),
                series_uid=ct_series_uid,
                sop_instance_uid=ct_uid,
                sop_class_uid=str(ct.SOPClassUID),
                rows=ct_size,
                columns=ct_size,
                modality="CT",
                series_number=3,
                instance_number=1,
            )
        )
    index = ReviewIndex(
        case_id=case_id,
        images=tuple(images),
        proposed_spec=RedactionSpec(
            instances=[InstanceEdits(sop_instance_uid=cine_uid, blackouts=[proposal])]
        ),
    )
    ws.write_bytes(Area.PREVIEWS, INDEX_FILE, index.model_dump_json(indent=1).encode())
    transact(engine, lambda s: cases.replace_instances(s, case_id, infos))
    return SyntheticCase(
        case_id=case_id,
        workspace=ws,
        index=index,
        cine_uid=cine_uid,
        cine_series_uid=cine_series,
        box=box,
        rows=rows,
        columns=columns,
        frames=cine_frames,
        proposal=proposal,
        ct_uid=ct_uid,
    )


def _write_image(ws: CaseWorkspace, uid: str, ds: Dataset, preview_frames: int) -> list[FramePreview]:
    """Write the image's first-pass DICOM, its previews and thumbnail as the case flow does."""
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    atomic_write_bytes(ws.file(Area.FIRST_PASS, f"{uid}.dcm"), buffer.getvalue())
    previews = render_previews(ds, max_frames=preview_frames)
    folder = ws.file(Area.PREVIEWS, uid)
    for preview in previews:
        atomic_write_bytes(contained_path(folder, frame_file(preview.frame_number)), preview.jpeg)
    atomic_write_bytes(contained_path(folder, THUMBNAIL_FILE), previews[0].thumbnail)
    return previews
