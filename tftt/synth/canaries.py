"""Synthetic patients whose identifying values are "canaries" that a byte search can find.

Every identifying value of an :class:`Identity` is clearly fake and carries a distinctive
uppercase token (``CANARY...`` or ``CNRY...``; the e-mail carries ``canary`` in lower case), so a
test can search the raw bytes of de-identified output for each planted value. UIDs live under the
example arc ``2.999`` and share one per-identity root, so one prefix search finds every original
UID.

:func:`canary_strings` lists what must not survive, split by what the first pass may still keep:
the first pass keeps UIDs, station/device identity and institution identity, the second pass
removes everything in the set. Values the second pass keeps on purpose (sex, age up to 89, size,
weight, the year of dates) are never listed; full dates are listed as ``YYYYMMDD``. Times are not
listed either: six digits are too short to search for without false hits.
"""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict

_FAMILY_WORDS = (
    "ZELDA", "MORTIMER", "XANTHE", "BARNABY", "OPHELIA", "CASIMIR", "PERPETUA", "THADDEUS",
    "WILHELMINA", "EZEKIEL", "GWENDOLYN", "LEOPOLD", "MIRABEL", "PERCIVAL", "ROSALIND",
    "SEPTIMUS", "TABITHA",
)  # fmt: skip
_GIVEN_WORDS = (
    "QUIXOTE", "ZANZIBAR", "MARMADUKE", "FENWICK", "HORATIO", "ISOLDE", "JEROBOAM",
    "KALLISTO", "LUCRETIUS", "NEBUCHAD", "OSWALDO", "PRUDENCIA", "QUENTINA",
)  # fmt: skip
_PHYSICIAN_WORDS = (
    "HIPPOLYTA", "BARTHOLOMEW", "EVANGELINE", "LYSANDER", "PERSEPHONE", "OCTAVIAN",
    "CLEOPATRA", "DEMOSTHENES", "ARISTIDES", "THEODOSIA", "VALERIANUS",
)  # fmt: skip

STANDARD_STUDIES = (1, 2, 3, 4, 5, 99)
"""Study numbers the builders use (CT, MR, radiography, US, XA, and the referenced prior)."""

UID_ARC = "2.999"
"""The ITU-T/ISO example arc: every synthetic UID is ``2.999.<number>.…`` and so clearly fake."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Identity(_Frozen):
    """One synthetic patient, the study context and the equipment that imaged them.

    Person names are DICOM PN strings (``FAMILY^GIVEN^MIDDLE``); dates are ``YYYYMMDD``, times
    ``HHMMSS``. Every original UID of this identity starts with ``uid_root + "."``.
    """

    seed: int
    number: int
    patient_name: str
    patient_id: str
    issuer_of_patient_id: str
    other_patient_id: str
    other_patient_names: tuple[str, ...]
    patient_birth_name: str
    patient_mother_birth_name: str
    birth_date: str
    sex: str
    age: str
    size_m: float
    weight_kg: float
    address: str
    phone: str
    email: str
    occupation: str
    admission_id: str
    accession_number: str
    study_id: str
    requested_procedure_id: str
    scheduled_step_id: str
    referring_physician: str
    requesting_physician: str
    performing_physician: str
    operator_name: str
    reading_physician: str
    physician_of_record: str
    institution_name: str
    institution_address: str
    institution_department: str
    station_name: str
    device_serial_number: str
    uid_root: str
    study_date: str
    study_time: str
    prior_date: str

    @property
    def family_name(self) -> str:
        return self.patient_name.split("^")[0]

    @property
    def given_name(self) -> str:
        return self.patient_name.split("^")[1]

    @property
    def uid_prefix(self) -> str:
        """``uid_root`` plus the dot: a prefix of every original UID of this identity."""
        return self.uid_root + "."

    def uid(self, *parts: int) -> str:
        """A deterministic UID under this identity's root, e.g. ``uid(1, 2, 3)``.

        Raises:
            ValueError: no part given, a negative part, or the UID would exceed 64 characters.
        """
        if not parts or any(p < 0 for p in parts):
            raise ValueError("a UID needs one or more non-negative parts")
        value = ".".join([self.uid_root, *(str(p) for p in parts)])
        if len(value) > 64:
            raise ValueError("UID longer than 64 characters")
        return value

    def datetime(self, hours_after: int = 0) -> str:
        """Study date and time (DT, ``YYYYMMDDHHMMSS.ffffff``), optionally a few hours later."""
        hh = (int(self.study_time[:2]) + hours_after) % 24
        return f"{self.study_date}{hh:02d}{self.study_time[2:]}.{self.number:06d}"


class CanarySet(_Frozen):
    """The planted values that must not survive de-identification, as written into files.

    ``always``: must be gone after the first pass already (names, IDs, dates, contacts, ...).
    ``uids``: original UIDs: first the identity's UID prefix (``uid_root + "."``, a substring
    of every one of them), then the Study Instance UIDs of :data:`STANDARD_STUDIES`; the first
    pass keeps them, the second pass must remove them. Series and instance UIDs are listed per
    file in the corpus manifest.
    ``device_and_institution``: station, device serial, institution and department; kept by the
    first pass, removed by the second.
    """

    always: tuple[str, ...]
    uids: tuple[str, ...]
    device_and_institution: tuple[str, ...]

    def first_pass(self) -> tuple[str, ...]:
        """What must not survive the first pass."""
        return self.always

    def second_pass(self) -> tuple[str, ...]:
        """What must not survive the second (full) pass: everything."""
        return (*self.always, *self.uids, *self.device_and_institution)

    def merged(self, other: CanarySet) -> CanarySet:
        """The union of two sets (order kept, duplicates dropped)."""
        return CanarySet(
            always=_unique((*self.always, *other.always)),
            uids=_unique((*self.uids, *other.uids)),
            device_and_institution=_unique(
                (*self.device_and_institution, *other.device_and_institution)
            ),
        )


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _letters(value: int, width: int = 3) -> str:
    out = []
    for _ in range(width):
        value, rest = divmod(value, 26)
        out.append(chr(ord("A") + rest))
    return "".join(reversed(out))


def make_identity(seed: int) -> Identity:
    """The synthetic patient for ``seed`` (deterministic; distinct numbers for seeds < 90000).

    Even seeds are 92 years old at the study (``PatientAge`` ``092Y``), odd seeds 30–79.

    Raises:
        ValueError: ``seed`` is negative.
    """
    if seed < 0:
        raise ValueError("seed must be non-negative")
    number = 10000 + (38213 + seed * 7919) % 90000
    tag = _letters(seed)
    family = "CANARY" + _FAMILY_WORDS[seed % len(_FAMILY_WORDS)]
    given = _GIVEN_WORDS[seed % len(_GIVEN_WORDS)]
    phys = [_PHYSICIAN_WORDS[(seed + k) % len(_PHYSICIAN_WORDS)] for k in range(6)]

    study_year = 2019 + seed % 5
    study = date(study_year, 3 + (seed * 5) % 10, 2 + (seed * 11 + 12) % 27)
    age_years = 92 if seed % 2 == 0 else 30 + (seed * 7) % 50
    birth = date(study_year - age_years, 1 + seed % (study.month - 1), 2 + (seed * 3) % 27)
    if (birth.month, birth.day) >= (study.month, study.day):  # keep the age exact
        birth = birth.replace(month=1, day=2)
    prior = study - timedelta(days=30 + seed % 200)
    if prior.day == 1:
        prior -= timedelta(days=1)
    house = 3 + number % 97
    time = f"{8 + seed % 9:02d}{(seed * 7 + 13) % 60:02d}{(seed * 13 + 27) % 60:02d}"

    return Identity(
        seed=seed,
        number=number,
        patient_name=f"{family}^{given}^CNRYMID{tag}",
        patient_id=f"CNRYID{number}",
        issuer_of_patient_id=f"CNRYISSUER{number}",
        other_patient_id=f"CNRYOID{number}",
        other_patient_names=(f"CANARYALIAS{tag}^{given}", f"CANARYNICK{tag}^{family}"),
        patient_birth_name=f"CANARYBIRTH{tag}^{given}",
        patient_mother_birth_name=f"CANARYMOTHER{tag}^{phys[5]}",
        birth_date=birth.strftime("%Y%m%d"),
        sex="FM"[seed % 2],
        age=f"{age_years:03d}Y",
        size_m=1.55 + (seed % 40) / 100,
        weight_kg=50.0 + (seed * 3) % 45,
        address=f"{house} CNRYLANE {tag}, CNRYCITY{number}, NOWHERE",
        phone=f"+1-555-01{number}",
        email=f"{family[6:].lower()}.canary{number}@example.invalid",
        occupation=f"CNRYJOB{number}",
        admission_id=f"CNRYADM{number}",
        accession_number=f"CNRYACC{number}",
        study_id=f"CNRYSTU{number}",
        requested_procedure_id=f"CNRYRP{number}",
        scheduled_step_id=f"CNRYSPS{number}",
        referring_physician=f"CANARYREFERRER{tag}^{phys[0]}",
        requesting_physician=f"CANARYREQUESTER{tag}^{phys[1]}",
        performing_physician=f"CANARYPERFORMER{tag}^{phys[2]}",
        operator_name=f"CANARYOPERATOR{tag}^{phys[3]}",
        reading_physician=f"CANARYREADER{tag}^{phys[4]}",
        physician_of_record=f"CANARYRECORD{tag}^{phys[0]}",
        institution_name=f"CNRYINST{number} GENERAL HOSPITAL",
        institution_address=f"{house + 1} CNRYAVENUE, CNRYINSTCITY{number}",
        institution_department=f"CNRYDEPT{number} RADIOLOGY",
        station_name=f"CNRYSTN{number}",
        device_serial_number=f"CNRYSN{number}",
        uid_root=f"{UID_ARC}.{number}",
        study_date=study.strftime("%Y%m%d"),
        study_time=time,
        prior_date=prior.strftime("%Y%m%d"),
    )


def _pn_forms(name: str) -> tuple[str, ...]:
    return (name, *(part for part in name.split("^") if part))


def canary_strings(identity: Identity) -> CanarySet:
    """Every planted value of ``identity`` that a full de-identification must remove.

    Person names appear whole and as each component; dates as ``YYYYMMDD`` (which also matches
    inside DT values); UIDs as the identity's UID prefix and its study UIDs.
    """
    names = (
        identity.patient_name,
        *identity.other_patient_names,
        identity.patient_birth_name,
        identity.patient_mother_birth_name,
        identity.referring_physician,
        identity.requesting_physician,
        identity.performing_physician,
        identity.operator_name,
        identity.reading_physician,
        identity.physician_of_record,
    )
    always = [form for name in names for form in _pn_forms(name)]
    always += [
        identity.patient_id,
        identity.issuer_of_patient_id,
        identity.other_patient_id,
        identity.address,
        identity.phone,
        identity.email,
        identity.occupation,
        identity.admission_id,
        identity.accession_number,
        identity.study_id,
        identity.requested_procedure_id,
        identity.scheduled_step_id,
        identity.birth_date,
        identity.study_date,
        identity.prior_date,
    ]
    return CanarySet(
        always=_unique(tuple(always)),
        uids=(identity.uid_prefix, *(identity.uid(study) for study in STANDARD_STUDIES)),
        device_and_institution=(
            identity.institution_name,
            identity.institution_address,
            identity.institution_department,
            identity.station_name,
            identity.device_serial_number,
        ),
    )
