"""Retry only what TFTT marks as transient (TargetUnavailableError, a locked database...)."""

from __future__ import annotations

from typing import Any

from tftt.errors import is_retryable


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry when the failure is a retryable TFTT error."""
    try:
        state.result()
    except Exception as exc:
        return is_retryable(exc)
    return False
