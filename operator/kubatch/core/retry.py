"""retryStrategy evaluation: ``attempts`` and ``evaluateOnExit`` (user guide, "Retry strategy",
"Automated job retries"; spec 3.7, checklist H).

Owns: ``decide_retry`` (RETRY or EXIT for one failed attempt), the glob matcher used by
``onExitCode`` / ``onReason`` / ``onStatusReason``, the effective strategy (a BatchJob's
``retryStrategy`` replaces its definition's), and ``after_attempt`` which turns a finished attempt
into the job's next status.

Rules:
- ``attempts`` defaults to 1 (no retry); a failed attempt is retried only while
  ``attempt_number < attempts``.
- Cancelled, terminated and timed-out attempts are never retried.
- ``evaluateOnExit`` entries are checked in order; the first entry whose *given* conditions all
  match decides. An absent (missing, null or empty-string) condition matches anything.
- If no entry matches, the job is retried (while attempts remain) -- the guide: "If
  evaluateOnExit is specified but none of the entries match, then the job is retried."
- Patterns are literal strings, with one wildcard: an optional trailing ``*`` turns the pattern
  into a prefix match ("only the start of the string needs to be an exact match"). A ``*``
  anywhere else is a literal character. ``onExitCode`` matches the decimal string of the exit
  code; an attempt without an exit code (lost host, start failure) matches only ``*``.
- Case: ``action`` is case-insensitive ("The values aren't case sensitive"); patterns are
  matched case-sensitively (exact match of the pattern text).
- A missing reason / statusReason is matched as the empty string, so the guide's catch-all
  ``{"onReason": "*", "action": "EXIT"}`` catches every attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kubatch.core.states import AttemptOutcome, JobStatus, Transition, transition

DEFAULT_ATTEMPTS = 1
MAX_ATTEMPTS = 10
MAX_EVALUATE_ON_EXIT = 5
MAX_PATTERN_LENGTH = 512


class Action(StrEnum):
    RETRY = "RETRY"
    EXIT = "EXIT"


@dataclass(frozen=True)
class Decision:
    """RETRY or EXIT, with the index of the evaluateOnExit entry that decided (None if none did)
    and a short human explanation (for Events)."""

    action: Action
    matched_entry: int | None
    explanation: str

    @property
    def retry(self) -> bool:
        return self.action == Action.RETRY


def glob_match(pattern: str, value: str) -> bool:
    """AWS Batch evaluateOnExit glob: exact match, or prefix match when the pattern ends in ``*``."""
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def max_attempts(strategy: Mapping[str, Any] | None) -> int:
    """``retryStrategy.attempts``, defaulting to 1."""
    if not strategy:
        return DEFAULT_ATTEMPTS
    attempts = strategy.get("attempts")
    if attempts is None:
        return DEFAULT_ATTEMPTS
    return max(1, int(attempts))


def effective_strategy(
    definition_spec: Mapping[str, Any] | None, job_spec: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The BatchJob's retryStrategy replaces (not merges with) the JobDefinition's."""
    job_strategy = (job_spec or {}).get("retryStrategy")
    if job_strategy is not None:
        return dict(job_strategy)
    def_strategy = (definition_spec or {}).get("retryStrategy")
    return dict(def_strategy) if def_strategy is not None else None


def effective_timeout(definition_spec: Mapping[str, Any] | None, job_spec: Mapping[str, Any] | None) -> int | None:
    """``timeout.attemptDurationSeconds``: the job's over the definition's; None = no timeout.

    The clock of each attempt starts at its startedAt (RUNNING); when it runs out the pod gets
    SIGTERM, then SIGKILL after the grace period, and the attempt fails with REASON_TIMEOUT and is
    not retried. For an array the timeout applies to each child; for MNP to the whole job."""
    for spec in (job_spec or {}, definition_spec or {}):
        seconds = (spec.get("timeout") or {}).get("attemptDurationSeconds")
        if seconds:
            return int(seconds)
    return None


def _given(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is None or value == "":
        return None
    return str(value)


def entry_matches(
    entry: Mapping[str, Any], exit_code: int | None, reason: str | None, status_reason: str | None
) -> bool:
    """True when every condition given in ``entry`` matches the attempt."""
    checks = (
        ("onExitCode", "" if exit_code is None else str(exit_code)),
        ("onReason", reason or ""),
        ("onStatusReason", status_reason or ""),
    )
    for key, value in checks:
        pattern = _given(entry, key)
        if pattern is not None and not glob_match(pattern, value):
            return False
    return True


def decide_retry(
    strategy: Mapping[str, Any] | None,
    attempt_number: int,
    exit_code: int | None,
    reason: str | None,
    status_reason: str | None,
    *,
    cancelled: bool = False,
    terminated: bool = False,
    timed_out: bool = False,
) -> Decision:
    """Decide what happens after *failed* attempt ``attempt_number`` (1-based)."""
    if cancelled or terminated:
        return Decision(Action.EXIT, None, "cancelled or terminated jobs are not retried")
    if timed_out:
        return Decision(Action.EXIT, None, "jobs that time out are not retried")
    attempts = max_attempts(strategy)
    left = attempt_number < attempts
    for i, entry in enumerate((strategy or {}).get("evaluateOnExit") or []):
        if entry_matches(entry, exit_code, reason, status_reason):
            action = Action(str(entry.get("action", "RETRY")).upper())
            if action == Action.EXIT:
                return Decision(Action.EXIT, i, f"evaluateOnExit[{i}] says EXIT")
            if left:
                return Decision(Action.RETRY, i, f"evaluateOnExit[{i}] says RETRY")
            return Decision(Action.EXIT, i, f"evaluateOnExit[{i}] says RETRY but all {attempts} attempts used")
    if left:
        return Decision(Action.RETRY, None, f"attempt {attempt_number} of {attempts} failed")
    return Decision(Action.EXIT, None, f"all {attempts} attempts used")


def after_attempt(
    current: JobStatus | str,
    outcome: AttemptOutcome,
    strategy: Mapping[str, Any] | None,
    attempt_number: int,
    *,
    cancelled: bool = False,
) -> tuple[Transition, Decision | None]:
    """The job's next status after a finished attempt: SUCCEEDED, RUNNABLE (retry) or FAILED,
    with the attempt's statusReason. The decision is None for a success. A job still recorded as
    RUNNABLE/STARTING is treated as having reached STARTING/RUNNING (walk ``forward_path`` first
    to record the intermediate states)."""
    cur = JobStatus(current)
    if cur == JobStatus.RUNNABLE:
        cur = JobStatus.STARTING  # the attempt had a pod, so it was at least STARTING
    if cur == JobStatus.STARTING and outcome.succeeded:
        cur = JobStatus.RUNNING  # a pod that finished before it was seen running
    if outcome.succeeded:
        return transition(cur, JobStatus.SUCCEEDED, outcome.status_reason), None
    decision = decide_retry(
        strategy,
        attempt_number,
        outcome.exit_code,
        outcome.reason,
        outcome.status_reason,
        cancelled=cancelled,
        terminated=outcome.terminated,
        timed_out=outcome.timed_out,
    )
    target = JobStatus.RUNNABLE if decision.retry else JobStatus.FAILED
    return transition(cur, target, outcome.status_reason), decision
