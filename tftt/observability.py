"""Keep third-party libraries from writing data values to logs and stderr.

pydicom warns about invalid values *with the value in the message* (e.g. "Invalid value for VR
UI: '<the UID>'"): on identified data that is PHI on stderr. Every TFTT entry point (CLI,
flows, service, worker processes) calls :func:`quiet_libraries` first. TFTT's own messages
name attributes and counts, never values.
"""

from __future__ import annotations

import logging
import warnings

import pydicom.config


def quiet_libraries() -> None:
    """Silence value-bearing validation warnings and log lines of pydicom and pynetdicom."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?$")
    warnings.filterwarnings("ignore", message=r".*(VR|value|Value).*", category=UserWarning)
    for name in ("pydicom", "pynetdicom"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.CRITICAL)
        logger.propagate = False
