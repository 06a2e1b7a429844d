#!/usr/bin/env bash
# The main job on embedded defaults: installs what is missing (Debian packages, a virtualenv),
# then runs `tftt demo`: a local Prefect server on SQLite, `tftt serve`, a synthetic study sent
# through the signed PACS webhook, reviewed (automatically, or by you with --review), published
# to a case folder under tftt-data/published/. Extra arguments go to `tftt demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh
exec .venv/bin/tftt demo "$@"
