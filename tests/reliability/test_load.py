"""16 concurrent gRPC clients, a bounded mix of create/get/list/delete/run: no unexpected errors,
final state consistent with the operations log, at most one delivery per RunTask'ed task, and the
emulator's memory (VmRSS of the subprocess) flat between the two halves. No timing assertions.

NOT_FOUND is legitimate only for an operation on a name that some operation removed (a successful
DeleteTask or RunTask) which had started before the NOT_FOUND came back.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from google.api_core import exceptions
from rel_helpers import QUEUE, EmulatorProcess, RecordingWorker, vm_rss_kib, wait_until

from cloudtasks_emulator.testing import make_client

pytestmark = pytest.mark.slow

CLIENTS = 16
OPS_PER_CLIENT_PER_HALF = 94  # 2 halves x 16 clients x 94 = 3008 operations
MIX = [("create", 35), ("get", 20), ("list", 8), ("delete", 17), ("run", 20)]
RSS_GROWTH_BOUND_KIB = 32 * 1024  # generous: the second half may not grow the emulator by more


@dataclass
class Op:
    client: int
    kind: str
    name: str
    start: float
    end: float
    code: str  # "OK" or the gRPC status name


class Load:
    def __init__(self, target: str, worker_url: str) -> None:
        self.target = target
        self.worker_url = worker_url
        self.later = datetime.now(timezone.utc) + timedelta(days=1)  # only RunTask dispatches
        self.lock = threading.Lock()
        self.attempted: set[str] = set()
        self.created: list[str] = []
        self.own: dict[int, list[str]] = defaultdict(list)
        self.log: list[Op] = []
        self.problems: list[str] = []
        self.counter = Counter()

    def run_half(self, half: int) -> None:
        threads = [threading.Thread(target=self._client, args=(c, half), daemon=True) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
            assert not t.is_alive(), "a client hung"

    def _client(self, index: int, half: int) -> None:
        rng = random.Random(f"{index}:{half}")
        client = make_client(self.target)
        kinds = [k for k, _ in MIX]
        weights = [w for _, w in MIX]
        for n in range(OPS_PER_CLIENT_PER_HALF):
            kind = rng.choices(kinds, weights)[0]
            with self.lock:
                pool = self.own[index] if (rng.random() < 0.7 and self.own[index]) else self.created
                target = rng.choice(pool) if pool else None
            if kind != "create" and kind != "list" and target is None:
                kind = "create"
            if kind == "create":
                target = f"{QUEUE}/tasks/c{index:02d}-h{half}-{n:03d}"
                with self.lock:
                    self.attempted.add(target)
            start = time.monotonic()
            try:
                self._do(client, kind, target, rng)
                code = "OK"
            except exceptions.GoogleAPICallError as exc:
                code = exc.grpc_status_code.name if exc.grpc_status_code else f"HTTP{exc.code}"
            except Exception as exc:  # noqa: BLE001 - any other failure is a finding
                code = f"{type(exc).__name__}: {exc}"
            end = time.monotonic()
            with self.lock:
                self.log.append(Op(index, kind, target or "", start, end, code))
                if kind == "create" and code == "OK":
                    self.created.append(target)
                    self.own[index].append(target)

    def _do(self, client, kind: str, name: str | None, rng: random.Random) -> None:
        if kind == "create":
            task = client.create_task(request={"parent": QUEUE, "task": {
                "name": name, "schedule_time": self.later,
                "http_request": {"url": f"{self.worker_url}/{name.rsplit('/', 1)[1]}", "body": name.encode()}}},
                retry=None, timeout=30)
            if task.name != name:
                self.problems.append(f"create {name} returned {task.name}")
        elif kind == "get":
            task = client.get_task(request={"name": name, "response_view": "FULL"}, retry=None, timeout=30)
            if task.name != name or task.http_request.body != name.encode():
                self.problems.append(f"get {name} returned another task {task.name}")
        elif kind == "list":
            page = client.list_tasks(request={"parent": QUEUE, "page_size": rng.choice([10, 100, 1000])},
                                     retry=None, timeout=30)
            for task in list(page.tasks):
                with self.lock:
                    if task.name not in self.attempted:
                        self.problems.append(f"list showed {task.name}, never created")
        elif kind == "delete":
            client.delete_task(request={"name": name}, retry=None, timeout=30)
        elif kind == "run":
            task = client.run_task(request={"name": name}, retry=None, timeout=30)
            if task.name != name:
                self.problems.append(f"run {name} returned {task.name}")


def test_sixteen_clients_mixed_load(tmp_path):
    worker = RecordingWorker()
    args = ["--port", "0", "--http-port", "0", "--queue", QUEUE, "--app-engine-url", "http://127.0.0.1:1"]
    try:
        with EmulatorProcess(args, tmp_path / "emulator.log") as emu:
            load = Load(emu.grpc_target, worker.url)
            rss_start = vm_rss_kib(emu.pid)
            load.run_half(0)
            rss_half = vm_rss_kib(emu.pid)
            load.run_half(1)
            rss_end = vm_rss_kib(emu.pid)

            log = load.log
            assert len(log) == 2 * CLIENTS * OPS_PER_CLIENT_PER_HALF
            assert not load.problems, load.problems[:10]
            removals: dict[str, list[Op]] = defaultdict(list)
            for op in log:
                if op.kind in ("delete", "run") and op.code == "OK":
                    removals[op.name].append(op)
            removal_starts: dict[str, list[float]] = defaultdict(list)
            for op in log:
                if op.kind in ("delete", "run"):
                    removal_starts[op.name].append(op.start)
            unexpected = []
            for op in log:
                if op.code == "OK":
                    continue
                if op.code == "NOT_FOUND" and op.kind in ("get", "delete", "run"):
                    # legitimate only after a removal of that name had started, and one succeeded
                    if any(s < op.end for s in removal_starts[op.name]) and removals[op.name]:
                        continue
                unexpected.append(op)
            assert not unexpected, f"{len(unexpected)} unexpected errors, e.g. {unexpected[:5]}"

            created = {op.name for op in log if op.kind == "create" and op.code == "OK"}
            assert len(created) == sum(1 for op in log if op.kind == "create"), "a create failed"
            removed = set(removals)
            run_ok = {op.name for op in log if op.kind == "run" and op.code == "OK"}
            expected = created - removed
            client = make_client(emu.grpc_target)

            def live() -> set[str]:
                return {t.name for t in client.list_tasks(parent=QUEUE)}

            wait_until(lambda: live() == expected, timeout=120,
                       message=f"the queue to hold exactly the {len(expected)} tasks the log leaves")
            # every task run was delivered exactly once (RunTask on an in-flight task does not re-send)
            wait_until(lambda: {d.task_id for d in worker.snapshot() if d.answered}
                       >= {n.rsplit('/', 1)[1] for n in run_ok}, timeout=60, message="run tasks delivered")
            deliveries = Counter(d.task_id for d in worker.snapshot())
            assert set(deliveries) == {n.rsplit("/", 1)[1] for n in run_ok}
            twice = [t for t, c in deliveries.items() if c > 1]
            assert not twice, f"delivered more than once: {twice[:10]}"
            for name in run_ok:  # a task that ran is gone and its name reserved
                with pytest.raises(exceptions.AlreadyExists):
                    client.create_task(parent=QUEUE, task={"name": name, "http_request": {"url": worker.url}})

            counts = Counter((op.kind, op.code) for op in log)
            growth = rss_end - rss_half
            print(f"LOAD-RUN ops={len(log)} created={len(created)} removed={len(removed)} live={len(expected)} "
                  f"runs_delivered={len(deliveries)} rss_kib start={rss_start} half={rss_half} end={rss_end} "
                  f"second_half_growth_kib={growth} outcomes={dict(sorted(counts.items()))}")
            assert growth < RSS_GROWTH_BOUND_KIB, f"emulator RSS grew {growth} KiB in the second half"
            assert "Traceback" not in emu.stderr(), emu.stderr()[-3000:]
    finally:
        worker.stop()

