"""Write the JSON Schema of the redaction spec and the review decision.

    python3 scripts/export_schema.py            # writes redaction_specs/schema.json
    python3 scripts/export_schema.py --check    # exits 1 when the file is stale

The output is deterministic (sorted keys, two-space indent, trailing newline), so the test
``tests/test_redaction_spec.py`` can compare it byte for byte.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tftt.redaction_spec import schema_document  # noqa: E402
from tftt.store.files import atomic_write_text  # noqa: E402

SCHEMA_PATH = ROOT / "redaction_specs" / "schema.json"


def render() -> str:
    return json.dumps(schema_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.exists() else ""
        if current != text:
            print(f"{SCHEMA_PATH.relative_to(ROOT)} is stale; run scripts/export_schema.py")
            return 1
        return 0
    atomic_write_text(SCHEMA_PATH, text)
    print(f"wrote {SCHEMA_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
