"""The view's two statuses of a job: what the API server has (``written_status``) and what every
reader sees (the job's status: a decided one not written yet, else the written one). The written
one is kept apart only while a decision is pending; after any sequence of API events, our own
writes' responses, decisions, settlements and deletions, both equal a model's."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from kubatch.cluster.view import View

KEY = "ns/j"
STATES = ("SUBMITTED", "RUNNABLE", "STARTING", "RUNNING")

event = st.tuples(st.just("event"), st.booleans(), st.sampled_from((*STATES, "")))  # (new uid?, state)
decide = st.tuples(st.just("decide"), st.just(False), st.sampled_from(STATES))
written = st.tuples(st.just("write"), st.just(False), st.just(""))  # the pending decision written
delete = st.tuples(st.just("delete"), st.just(False), st.just(""))


@given(st.lists(st.one_of(event, decide, written, delete), max_size=30))
@example([("event", False, "SUBMITTED"), ("decide", False, "RUNNABLE"), ("event", False, "STARTING")])
@example([("event", False, ""), ("decide", False, "RUNNABLE"), ("event", True, "SUBMITTED"), ("write", False, "")])
@settings(max_examples=300)
def test_written_and_effective_statuses_follow_the_model(steps: list[tuple[str, bool, str]]) -> None:
    view = View()
    rv, uid = 0, 0
    api: dict[str, Any] | None = None  # the API's status of the current object (None: no object)
    pending: dict[str, Any] | None = None  # a decision not written yet

    def obj(status: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "metadata": {"namespace": "ns", "name": "j", "uid": f"u{uid}", "resourceVersion": str(rv)},
            "spec": {"jobQueue": "q"},
        }
        if status:
            body["status"] = dict(status)
        return body

    for kind, new_uid, state in steps:
        rv += 1
        if kind == "event":
            if new_uid or api is None:
                uid += 1
                pending = None  # a decision about the old object is void
            api = {"status": state} if state else {}
            view.on_job("ADDED" if new_uid else "MODIFIED", obj(api))
        elif kind == "decide" and api is not None:
            pending = {**api, "status": state, "statusReason": ""}
            view.set_status(KEY, dict(pending))
        elif kind == "write" and api is not None and pending is not None:
            api = dict(pending)
            response = obj(api)
            view.put_job(response)
            view.settle(KEY, response.get("status") or {})
            pending = None
        elif kind == "delete" and api is not None:
            view.on_job("DELETED", obj(api))
            api = pending = None
        if api is None:
            assert KEY not in view.jobs and view.written_status(KEY) == {}
            continue
        assert view.written_status(KEY) == api
        assert (view.jobs[KEY].get("status") or {}) == (pending if pending is not None else api)
        assert set(view.written) <= set(view.overlay), "a written status is kept apart only under a decision"
        if pending is None:
            assert view.jobs[KEY].get("status") is view.written_status(KEY) or not api
