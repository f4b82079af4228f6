"""A 100-task stack converges through injected faults: exactly the declared tasks, state == queue.

The real Pulumi CLI (Automation API, file backend in tmp) runs ``stacks/hundred`` against an
in-process emulator whose FaultInjector fails ~20% of CreateTask/GetTask/DeleteTask calls with
UNAVAILABLE before doing anything, and fails the *reply* of ~10% of CreateTask and DeleteTask calls
after the change was committed (the caller never hears of its success). The provider must retry,
adopt its own task on ALREADY_EXISTS, and treat NOT_FOUND on delete as done.

Figures (time to converge, retries used) are printed as a ``FAULT-RUN`` JSON line (``pytest -s`` or
``-rP`` shows it) and written to ``$RELIABILITY_FIGURES_DIR/faults.json`` when that is set.
"""
from __future__ import annotations

import json
import os
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from rel_helpers import QUEUE, make_stack, state_resources

from cloudtasks_emulator.core.faults import FaultInjector, parse_spec
from cloudtasks_emulator.testing import make_client, run_emulator

pytestmark = [pytest.mark.slow, pytest.mark.stack]

COUNT = 100
SEED = 6
FAULTS = ("CreateTask:error=0.2:code=UNAVAILABLE:commit_then_fail=0.1,"
          "GetTask:error=0.2:code=UNAVAILABLE,"
          "DeleteTask:error=0.2:code=UNAVAILABLE:commit_then_fail=0.1,"
          f"seed={SEED}")


def _queue_tasks(client) -> list:
    return list(client.list_tasks(request={"parent": QUEUE, "response_view": "FULL"}))


def _injected(snapshot: dict) -> dict:
    counters = snapshot["counters"]
    total = sum(c["errors"] + c["commit_then_fail"] for c in counters.values())
    return {"retries": total, "counters": counters}


def test_hundred_tasks_converge_under_faults(tmp_path, monkeypatch):
    schedule = (datetime.now(timezone.utc) + timedelta(days=7)).replace(microsecond=0)
    faults = FaultInjector.from_spec(FAULTS)
    figures: dict = {"tasks": COUNT, "faults": FAULTS}
    with run_emulator(queues=[QUEUE], http_port=None, faults=faults) as emu:
        client = make_client(emu.grpc_target)
        stack, _backend = make_stack("hundred", tmp_path, {
            "cloudtasks:emulatorHost": emu.grpc_target, "reliability-hundred:queue": QUEUE,
            "reliability-hundred:count": str(COUNT),
            "reliability-hundred:scheduleTime": schedule.isoformat().replace("+00:00", "Z"),
        }, monkeypatch)

        # 1. up through the faults
        started = time.monotonic()
        result = stack.up(on_output=lambda _line: None)
        figures["up_seconds"] = round(time.monotonic() - started, 2)
        figures["up"] = _injected(faults.snapshot())
        assert result.summary.result == "succeeded"
        assert result.summary.resource_changes.get("create") == COUNT + 1  # + the stack itself
        assert faults.snapshot()["counters"]["CreateTask"]["commit_then_fail"] > 0, "no lost reply was exercised"
        assert faults.snapshot()["counters"]["CreateTask"]["errors"] > 0

        faults.clear()  # look at the queue without faults
        tasks = _queue_tasks(client)
        names = [t.name for t in tasks]
        state = state_resources(stack)
        state_names = [r["outputs"]["name"] for r in state]
        assert len(tasks) == COUNT, f"{len(tasks)} tasks in the queue, expected {COUNT}"
        urls = Counter(t.http_request.url for t in tasks)
        assert len(urls) == COUNT and max(urls.values()) == 1, f"duplicated: {[u for u, n in urls.items() if n > 1]}"
        assert sorted(state_names) == sorted(names)
        assert len(set(state_names)) == COUNT
        assert sorted(result.outputs["names"].value) == sorted(names)
        for task in tasks:  # what was adopted is the task that was declared
            index = int(task.http_request.url.rsplit("/", 1)[1])
            assert task.http_request.headers["X-Index"] == str(index)
            assert task.http_request.body == f"task {index}".encode()
            assert task.schedule_time.timestamp() == schedule.timestamp()

        # 2. refresh (GetTask under faults) and a second up change nothing
        faults.configure(parse_spec(FAULTS))
        started = time.monotonic()
        refresh = stack.refresh(on_output=lambda _line: None)
        figures["refresh_seconds"] = round(time.monotonic() - started, 2)
        figures["refresh"] = _injected(faults.snapshot())
        assert refresh.summary.result == "succeeded"
        assert faults.snapshot()["counters"]["GetTask"]["errors"] > 0
        faults.configure(parse_spec(FAULTS))
        second = stack.up(on_output=lambda _line: None)
        assert second.summary.result == "succeeded"
        assert set(second.summary.resource_changes) == {"same"}, second.summary.resource_changes
        assert faults.snapshot()["counters"].get("CreateTask", {}).get("calls", 0) == 0
        faults.clear()
        assert sorted(t.name for t in _queue_tasks(client)) == sorted(names)
        assert sorted(r["outputs"]["name"] for r in state_resources(stack)) == sorted(names)

        # 3. destroy through the faults leaves the queue empty
        faults.configure(parse_spec(FAULTS))
        started = time.monotonic()
        destroy = stack.destroy(on_output=lambda _line: None)
        figures["destroy_seconds"] = round(time.monotonic() - started, 2)
        figures["destroy"] = _injected(faults.snapshot())
        assert destroy.summary.result == "succeeded"
        assert faults.snapshot()["counters"]["DeleteTask"]["commit_then_fail"] > 0
        faults.clear()
        assert _queue_tasks(client) == []
        assert state_resources(stack) == []
        stack.workspace.remove_stack("rel")

    print("FAULT-RUN " + json.dumps(figures, sort_keys=True))
    out_dir = os.environ.get("RELIABILITY_FIGURES_DIR")
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "faults.json"), "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=2, sort_keys=True)
