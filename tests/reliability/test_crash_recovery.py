"""``kill -9`` of an emulator with ``--data-dir`` loses nothing it acknowledged.

Delivery guarantee (the same as Cloud Tasks'): **at-least-once**.
- A CreateTask that returned to the caller is durable: it survives ``kill -9`` of the emulator (the
  SQLite WAL commit happens before the reply). A create cut by the kill may or may not exist after
  the restart, but if it exists it is exactly the task that was sent.
- A task whose success (2xx) the emulator *recorded* is deleted and its name reserved in the same
  transaction, so it is never dispatched again.
- A task whose 2xx reached the emulator but whose completion was not committed yet when the process
  died (and any attempt in flight at that moment) is dispatched again after the restart. Workers must
  be idempotent, exactly as with the real service (use ``X-CloudTasks-TaskName`` to de-duplicate).

The test: a writer thread creates tasks (two of three due now, going to a local worker; one of three
scheduled an hour ahead) and records each acknowledged one. ``kill -9`` comes at a seeded-random
moment, either from another thread right after the N-th acknowledged create (usually while the
writer's next create is on the wire) or from the worker right after it flushed its N-th 2xx (while the
emulator is about to record it). Every 7th task's first delivery is held unanswered by the worker
until the kill, so some attempts are certainly in flight when the process dies. Before the restart a copy of the data directory is opened to see
what the emulator had committed: which tasks remained and which completions were recorded. Then the
emulator restarts on the same directory and the checks above are made against the API and the worker.
"""
from __future__ import annotations

import random
import shutil
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from google.api_core import exceptions
from rel_helpers import QUEUE, EmulatorProcess, RecordingWorker, wait_until

from cloudtasks_emulator.core.store import Store
from cloudtasks_emulator.testing import make_client

pytestmark = pytest.mark.slow

MAX_TASKS = 3000  # the writer's bound; the kill always comes long before


def _spec(i: int, worker_url: str, later: datetime) -> dict:
    task = {"name": f"{QUEUE}/tasks/w{i:05d}",
            "http_request": {"url": f"{worker_url}/w/{i}", "headers": {"X-Seq": str(i)},
                             "body": f"payload {i}".encode()}}
    if i % 3 == 0:
        task["schedule_time"] = later
    return task


def _same(task, spec: dict) -> bool:
    """The stored task is the one that was created (fields we set; defaults may be added)."""
    ok = (task.name == spec["name"] and task.http_request.url == spec["http_request"]["url"]
          and task.http_request.headers.get("X-Seq") == spec["http_request"]["headers"]["X-Seq"]
          and task.http_request.body == spec["http_request"]["body"])
    if "schedule_time" in spec:
        ok = ok and abs(_epoch(task.schedule_time) - spec["schedule_time"].timestamp()) < 1e-6
    return ok


def _epoch(ts) -> float:
    return ts.timestamp() if hasattr(ts, "timestamp") else ts.seconds + ts.nanos / 1e9


class Writer(threading.Thread):
    def __init__(self, target: str, worker_url: str, later: datetime) -> None:
        super().__init__(daemon=True)
        self.client = make_client(target)
        self.worker_url, self.later = worker_url, later
        self.attempted: dict[str, dict] = {}
        self.acked: dict[str, dict] = {}
        self.cut: str | None = None  # the create the kill interrupted, if any
        self.cond = threading.Condition()

    def run(self) -> None:
        for i in range(MAX_TASKS):
            spec = _spec(i, self.worker_url, self.later)
            self.attempted[spec["name"]] = spec
            try:
                self.client.create_task(request={"parent": QUEUE, "task": spec}, retry=None, timeout=10)
            except exceptions.GoogleAPICallError:
                self.cut = spec["name"]
                return
            with self.cond:
                self.acked[spec["name"]] = spec
                self.cond.notify_all()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_kill_9_keeps_every_acknowledged_task_and_never_redelivers_a_recorded_success(tmp_path, seed):
    rng = random.Random(seed)
    mode = "after-2xx" if seed % 2 else "after-ack"
    threshold = rng.randint(5, 40) if mode == "after-2xx" else rng.randint(20, 150)
    data_dir = tmp_path / "data"
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).replace(microsecond=0)
    worker = RecordingWorker()
    args = ["--port", "0", "--http-port", "0", "--data-dir", str(data_dir), "--queue", QUEUE,
            "--app-engine-url", "http://127.0.0.1:1"]
    try:
        emu = EmulatorProcess(args, tmp_path / "emulator-1.log")
        killed = threading.Event()

        def kill() -> None:
            if not killed.is_set():
                killed.set()
                emu.kill9()

        if mode == "after-2xx":
            answered = []

            def on_answered(record) -> None:
                answered.append(record)
                if len(answered) >= threshold:
                    kill()
            worker.on_answered = on_answered
        # Every 7th task's first delivery is held unanswered until the kill: certainly in flight then.
        worker.hold_if = lambda d: d.phase == 1 and int(d.task_id[1:]) % 7 == 1
        writer = Writer(emu.grpc_target, worker.url, later)
        writer.start()
        if mode == "after-ack":
            with writer.cond:
                assert writer.cond.wait_for(lambda: len(writer.acked) >= threshold, timeout=60), "writer stalled"
            kill()
        assert killed.wait(60), "the kill never came"
        writer.join(30)
        assert not writer.is_alive()
        worker.on_answered = None
        emu.stop()
        worker.release_held.set()  # their connections are dead: the answers go nowhere
        phase1 = worker.snapshot()
        in_flight = {f"{QUEUE}/tasks/{d.task_id}" for d in phase1 if int(d.task_id[1:]) % 7 == 1}

        # What the dead emulator had committed, read from a copy of its data directory.
        snapshot_dir = tmp_path / "snapshot"
        shutil.copytree(data_dir, snapshot_dir)
        store = Store(str(snapshot_dir))
        try:
            remaining = {t.name: t for t in store.list_tasks(QUEUE, "", 10 ** 6)}
            now = time.time()
            completed = {n for n in writer.attempted if n not in remaining and store.reserved(n, now)}
        finally:
            store.close()

        acked = writer.acked
        assert len(acked) >= min(threshold, 5)
        # every acknowledged task is either still there (unchanged) or its success was recorded
        lost = [n for n in acked if n not in remaining and n not in completed]
        assert not lost, f"acknowledged tasks lost by kill -9: {lost[:10]}"
        for name, task in remaining.items():
            assert name in acked or name == writer.cut, f"{name} exists but was never created"
            assert _same(task, writer.attempted[name]), f"{name} changed"
        # a recorded success needs a delivery that reached the worker; scheduled tasks never ran
        delivered1 = {f"{QUEUE}/tasks/{d.task_id}" for d in phase1}
        assert completed <= delivered1, f"recorded as done without a delivery: {sorted(completed - delivered1)[:5]}"
        assert all("schedule_time" not in writer.attempted[n] for n in completed)
        assert len(phase1) == len({d.task_id for d in phase1}), "a task was delivered twice before the kill"
        assert in_flight <= set(remaining), "an attempt in flight at the kill was recorded as done"

        # Restart on the same directory; hold the worker so the API sees the state before dispatch.
        worker.phase = 2
        worker.hold.set()
        with EmulatorProcess(args, tmp_path / "emulator-2.log") as emu2:
            client = make_client(emu2.grpc_target)
            listed = {t.name: t for t in client.list_tasks(request={"parent": QUEUE, "response_view": "FULL"})}
            assert set(listed) == set(remaining), "the restarted emulator does not show what was committed"
            for name, task in listed.items():
                assert _same(task, writer.attempted[name]), f"{name} changed across the restart"
            worker.hold.clear()

            immediate = {n for n in remaining if "schedule_time" not in writer.attempted[n]}
            scheduled = set(remaining) - immediate

            def phase2() -> set[str]:
                return {f"{QUEUE}/tasks/{d.task_id}" for d in worker.snapshot() if d.phase == 2 and d.answered}

            wait_until(lambda: immediate <= phase2(), timeout=60, message="pending immediate tasks dispatched")
            wait_until(lambda: {t.name for t in client.list_tasks(parent=QUEUE)} == scheduled, timeout=60,
                       message="only the scheduled tasks remain")
            deliveries2 = [d for d in worker.snapshot() if d.phase == 2]
            names2 = [f"{QUEUE}/tasks/{d.task_id}" for d in deliveries2]
            assert not set(names2) & completed, f"recorded successes dispatched again: {sorted(set(names2) & completed)}"
            assert set(names2) == immediate, "dispatched after the restart: exactly the pending immediate tasks"
            assert len(names2) == len(set(names2)), "a task was delivered twice after the restart"
            for d in deliveries2:
                i = int(d.task_id[1:])
                assert d.body == f"payload {i}".encode() and d.headers.get("X-Seq") == str(i)
            redelivered = sorted(set(names2) & delivered1)
            assert in_flight <= set(names2), "attempts in flight at the kill must be dispatched again"
            print(f"CRASH-RUN seed={seed} mode={mode} threshold={threshold} acked={len(acked)} "
                  f"cut={'yes' if writer.cut in remaining else 'no'} completed_before_kill={len(completed)} "
                  f"pending_at_restart={len(immediate)} scheduled={len(scheduled)} "
                  f"redelivered_at_least_once={len(redelivered)}")
    finally:
        worker.stop()
