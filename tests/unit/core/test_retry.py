"""retryStrategy / evaluateOnExit, cross-checked with the user guide's examples."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubatch.core.retry import (
    Action,
    after_attempt,
    decide_retry,
    effective_strategy,
    effective_timeout,
    glob_match,
    max_attempts,
)
from kubatch.core.states import AttemptOutcome, JobStatus, host_terminated_reason

# "Automated job retries" example: two RETRY entries and a final catch-all EXIT.
GUIDE_RETRIES: dict[str, Any] = {
    "attempts": 3,
    "evaluateOnExit": [
        {"action": "RETRY", "onReason": "AGENT"},
        {"action": "RETRY", "onStatusReason": "Task failed to start"},
        {"action": "EXIT", "onReason": "*"},
    ],
}
# "Spot best practices" example: retry host losses up to five times, exit otherwise.
GUIDE_SPOT: dict[str, Any] = {
    "attempts": 5,
    "evaluateOnExit": [
        {"onStatusReason": "Host EC2*", "action": "RETRY"},
        {"onReason": "*", "action": "EXIT"},
    ],
}


def test_guide_example_agent_and_start_failures_retry_everything_else_exits() -> None:
    assert decide_retry(GUIDE_RETRIES, 1, None, "AGENT", None).action == Action.RETRY
    d = decide_retry(GUIDE_RETRIES, 1, None, "CannotPullContainerError: x", "Task failed to start")
    assert d.action == Action.RETRY and d.matched_entry == 1
    d = decide_retry(GUIDE_RETRIES, 1, 1, "", "Essential container in task exited")
    assert d.action == Action.EXIT and d.matched_entry == 2
    # the catch-all also catches an attempt with no reason at all
    assert decide_retry(GUIDE_RETRIES, 1, 1, None, None).action == Action.EXIT


def test_guide_spot_example() -> None:
    lost = host_terminated_reason("ip-10-0-0-1")
    for attempt in range(1, 5):
        assert decide_retry(GUIDE_SPOT, attempt, None, None, lost).action == Action.RETRY
    assert decide_retry(GUIDE_SPOT, 5, None, None, lost).action == Action.EXIT  # attempts used up
    assert decide_retry(GUIDE_SPOT, 1, 1, None, "Essential container in task exited").action == Action.EXIT


def test_on_exit_code_glob() -> None:
    strategy = {"attempts": 3, "evaluateOnExit": [{"onExitCode": "13*", "action": "EXIT"}]}
    assert decide_retry(strategy, 1, 137, None, None).action == Action.EXIT
    assert decide_retry(strategy, 1, 13, None, None).action == Action.EXIT
    assert decide_retry(strategy, 1, 1, None, None).action == Action.RETRY  # no match -> retried
    exact = {"attempts": 3, "evaluateOnExit": [{"onExitCode": "137", "action": "EXIT"}]}
    assert decide_retry(exact, 1, 1370, None, None).action == Action.RETRY


def test_all_given_conditions_must_match() -> None:
    strategy = {
        "attempts": 3,
        "evaluateOnExit": [{"onExitCode": "1", "onReason": "OutOfMemory*", "action": "EXIT"}],
    }
    assert decide_retry(strategy, 1, 1, "OutOfMemoryError: killed", None).action == Action.EXIT
    assert decide_retry(strategy, 1, 2, "OutOfMemoryError: killed", None).action == Action.RETRY
    assert decide_retry(strategy, 1, 1, "other", None).action == Action.RETRY


def test_first_match_wins_and_action_is_case_insensitive() -> None:
    strategy = {
        "attempts": 3,
        "evaluateOnExit": [{"onExitCode": "1", "action": "exit"}, {"onExitCode": "*", "action": "retry"}],
    }
    assert decide_retry(strategy, 1, 1, None, None).action == Action.EXIT
    assert decide_retry(strategy, 1, 2, None, None).action == Action.RETRY


@pytest.mark.parametrize(("written", "action"), [("EXIT", Action.EXIT), ("Exit", Action.EXIT), ("eXiT", Action.EXIT),
                                                ("RETRY", Action.RETRY), ("retry", Action.RETRY),
                                                ("Retry", Action.RETRY)])  # fmt: skip
def test_action_is_read_in_any_case(written: str, action: Action) -> None:
    """AWS Batch: "The values aren't case sensitive"; the CRD accepts any case and the core reads
    it as RETRY or EXIT (the explanation names it in upper case)."""
    strategy = {"attempts": 3, "evaluateOnExit": [{"onExitCode": "1", "action": written}]}
    d = decide_retry(strategy, 1, 1, None, None)
    assert d.action == action and d.matched_entry == 0
    assert d.explanation == f"evaluateOnExit[0] says {action.value}"
    # On the last attempt a RETRY entry cannot retry any more, whatever its case.
    assert decide_retry(strategy, 3, 1, None, None).action == Action.EXIT


def test_patterns_are_case_sensitive_and_star_only_at_end_is_a_wildcard() -> None:
    assert glob_match("Host EC2*", "Host EC2 (instance x) terminated.")
    assert not glob_match("host ec2*", "Host EC2 (instance x) terminated.")
    assert glob_match("a*b", "a*b") and not glob_match("a*b", "axxb")
    assert glob_match("*", "") and glob_match("*", "anything")
    assert not glob_match("", "x") and glob_match("", "")


def test_never_retry_cancelled_terminated_timed_out() -> None:
    always = {"attempts": 10, "evaluateOnExit": [{"onReason": "*", "action": "RETRY"}]}
    for flags in ({"cancelled": True}, {"terminated": True}, {"timed_out": True}):
        assert decide_retry(always, 1, 1, None, None, **flags).action == Action.EXIT


def test_defaults() -> None:
    assert max_attempts(None) == 1
    assert max_attempts({}) == 1
    assert max_attempts({"attempts": 4}) == 4
    assert decide_retry(None, 1, 1, None, None).action == Action.EXIT
    assert decide_retry({"attempts": 2}, 1, 1, None, None).action == Action.RETRY
    assert decide_retry({"attempts": 2}, 2, 1, None, None).action == Action.EXIT


def test_job_strategy_replaces_definition_strategy() -> None:
    jd = {"retryStrategy": {"attempts": 3, "evaluateOnExit": [{"onReason": "*", "action": "EXIT"}]}}
    assert effective_strategy(jd, {"retryStrategy": {"attempts": 2}}) == {"attempts": 2}
    assert effective_strategy(jd, {}) == jd["retryStrategy"]
    assert effective_strategy({}, {}) is None


def test_empty_string_condition_counts_as_absent() -> None:
    strategy = {"attempts": 2, "evaluateOnExit": [{"onExitCode": "", "onReason": "", "action": "EXIT"}]}
    assert decide_retry(strategy, 1, 5, "x", "y").action == Action.EXIT


# properties -----------------------------------------------------------------------------------
_word = st.text(alphabet="abcAB:. 019", max_size=8)
_entry = st.fixed_dictionaries(
    {"action": st.sampled_from(["RETRY", "EXIT", "retry", "Exit"])},
    optional={
        "onExitCode": st.sampled_from(["0", "1", "13*", "137", "*", "2*"]),
        "onReason": st.one_of(_word, _word.map(lambda w: w + "*")),
        "onStatusReason": st.one_of(_word, _word.map(lambda w: w + "*")),
    },
)
_strategy = st.one_of(
    st.none(),
    st.fixed_dictionaries({"attempts": st.integers(1, 10)}, optional={"evaluateOnExit": st.lists(_entry, max_size=5)}),
)


@given(
    _strategy,
    st.integers(1, 10),
    st.one_of(st.none(), st.integers(0, 255)),
    st.one_of(st.none(), _word),
    st.one_of(st.none(), _word),
)
def test_property_decision_model(
    strategy: dict[str, Any] | None, attempt: int, code: int | None, reason: str | None, sreason: str | None
) -> None:
    d = decide_retry(strategy, attempt, code, reason, sreason)
    attempts = (strategy or {}).get("attempts", 1)
    # model: first entry whose present conditions all match
    model_action = None
    for entry in (strategy or {}).get("evaluateOnExit", []):
        ok = True
        for key, value in (
            ("onExitCode", "" if code is None else str(code)),
            ("onReason", reason or ""),
            ("onStatusReason", sreason or ""),
        ):
            pat = entry.get(key)
            if pat:
                ok &= value.startswith(pat[:-1]) if pat.endswith("*") else value == pat
        if ok:
            model_action = entry["action"].upper()
            break
    if attempt >= attempts:
        assert d.action == Action.EXIT  # never more than `attempts` attempts
    elif model_action == "EXIT":
        assert d.action == Action.EXIT
    else:
        assert d.action == Action.RETRY  # matched RETRY, or nothing matched
    for flag in ("cancelled", "terminated", "timed_out"):
        assert decide_retry(strategy, attempt, code, reason, sreason, **{flag: True}).action == Action.EXIT


@given(_strategy, st.integers(0, 255))
def test_property_attempts_bound_total_runs(strategy: dict[str, Any] | None, code: int) -> None:
    """Simulate always-failing attempts: the job runs at most `attempts` times."""
    runs = 0
    attempt = 1
    while True:
        runs += 1
        if decide_retry(strategy, attempt, code, "", "").action == Action.EXIT:
            break
        attempt += 1
    assert runs <= max_attempts(strategy)


# after_attempt ----------------------------------------------------------------------------------
def _outcome(succeeded: bool, **kw: Any) -> AttemptOutcome:
    base: dict[str, Any] = {
        "succeeded": succeeded,
        "exit_code": 0 if succeeded else 1,
        "reason": "",
        "status_reason": "Essential container in task exited",
        "pod_name": "p",
        "node_name": "n",
        "started_at": None,
        "stopped_at": None,
    }
    base.update(kw)
    return AttemptOutcome(**base)


def test_after_attempt() -> None:
    t, d = after_attempt(JobStatus.RUNNING, _outcome(True), None, 1)
    assert t.status == JobStatus.SUCCEEDED and d is None
    t, d = after_attempt(JobStatus.STARTING, _outcome(True), None, 1)
    assert t.status == JobStatus.SUCCEEDED
    t, d = after_attempt(JobStatus.RUNNING, _outcome(False), {"attempts": 2}, 1)
    assert t.status == JobStatus.RUNNABLE and d is not None and d.retry
    t, _ = after_attempt(JobStatus.RUNNING, _outcome(False), {"attempts": 2}, 2)
    assert t.status == JobStatus.FAILED and t.status_reason == "Essential container in task exited"
    t, _ = after_attempt(
        JobStatus.RUNNING,
        _outcome(False, timed_out=True, status_reason="Job attempt duration exceeded timeout"),
        {"attempts": 5},
        1,
    )
    assert t.status == JobStatus.FAILED and t.status_reason == "Job attempt duration exceeded timeout"
    t, _ = after_attempt(JobStatus.STARTING, _outcome(False, start_failure=True), {"attempts": 2}, 1)
    assert t.status == JobStatus.RUNNABLE


@pytest.mark.parametrize("action", ["RETRY", "EXIT"])
def test_retry_entry_with_no_attempts_left_exits(action: str) -> None:
    strategy = {"attempts": 1, "evaluateOnExit": [{"onReason": "*", "action": action}]}
    assert decide_retry(strategy, 1, 1, None, None).action == Action.EXIT


def test_effective_timeout() -> None:
    jd = {"timeout": {"attemptDurationSeconds": 3600}}
    assert effective_timeout(jd, {"timeout": {"attemptDurationSeconds": 600}}) == 600
    assert effective_timeout(jd, {}) == 3600
    assert effective_timeout({}, None) is None


def test_after_attempt_from_runnable() -> None:
    t, _ = after_attempt(JobStatus.RUNNABLE, _outcome(True), None, 1)
    assert t.status == JobStatus.SUCCEEDED and t.changed
    t, _ = after_attempt(JobStatus.RUNNABLE, _outcome(False), {"attempts": 2}, 1)
    assert t.status == JobStatus.RUNNABLE and t.changed
