"""``prefect.yaml`` (the several-machine deployments) agrees with the code and with ``tftt serve``."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml
from prefect import Flow

from tftt.settings import Settings
from tftt.web.runs import PROCESS_CASE_DEPLOYMENT

ROOT = Path(__file__).resolve().parents[1]


def _deployments() -> dict[str, dict]:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return {d["name"]: d for d in config["deployments"]}


def test_every_entrypoint_is_a_flow_and_the_names_are_the_ones_tftt_starts():
    deployments = _deployments()
    assert set(deployments) == {"process-case", "publish-ready-cases", "take-down-case"}
    for name, deployment in deployments.items():
        path, _, attribute = deployment["entrypoint"].partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, attribute)
        assert isinstance(flow, Flow), name
        assert deployment["work_pool"]["name"] == "tftt"
        if name == "process-case":
            assert PROCESS_CASE_DEPLOYMENT == f"{flow.name}/{name}"  # what the webhook runs


def test_the_nightly_schedule_is_the_settings_default():
    schedule = _deployments()["publish-ready-cases"]["schedules"][0]
    assert schedule["cron"] == Settings().publish.nightly_cron


def test_workers_need_the_repository_path():
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    step = config["pull"][0]["prefect.deployments.steps.set_working_directory"]
    assert step["directory"] == "{{ $TFTT_REPO_DIR }}"
    assert "TFTT_REPO_DIR" in (ROOT / "README.md").read_text()
