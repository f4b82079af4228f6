"""Figures 7 and 8: stacks with the real Pulumi CLI (.tools/bin) against an emulator subprocess.

7: an N-task stack `pulumi up` / `pulumi destroy` vs a raw create_task/delete_task loop against the
   same emulator in the same run, with where the time goes (probe events + an empty-stack baseline).
8: a 100-task stack `up` with 20% injected UNAVAILABLE (every RPC) and commit-then-fail replies on
   CreateTask, vs the same stack without faults: time to converge, retries used, final task count.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from typing import Any

from common import PULUMI_BIN, ROOT, Figure, emulator_subprocess, fmt, log, median
from provider_bench import probe_env, read_probe

LOC = "projects/bench/locations/us-central1"

PROGRAM = '''\
import pulumi
from pulumi_cloudtasks import HttpRequestArgs, Task

config = pulumi.Config()
count = config.require_int("count")
queue = config.require("queue")
schedule = config.require("scheduleTime")
for i in range(count):
    Task(f"t{i}", queue=queue, schedule_time=schedule, dispatch_deadline="60s",
         http_request=HttpRequestArgs(url="https://api.example.com/reindex", http_method="POST",
                                      headers={"Content-Type": "application/json"}, body=f'{{"i": {i}}}'))
pulumi.export("count", count)
'''


class Stacks:
    """A temporary project dir + file backend + PULUMI_HOME, and subprocess `pulumi` calls."""

    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="bench-stack-")
        self.work = os.path.join(self.tmp, "project")
        os.makedirs(self.work)
        os.makedirs(os.path.join(self.tmp, "state"))
        os.makedirs(os.path.join(self.tmp, "home"))
        with open(os.path.join(self.work, "Pulumi.yaml"), "w") as fh:
            fh.write("name: bench\nruntime:\n  name: python\n  options:\n    toolchain: pip\n"
                     f"    virtualenv: {ROOT / '.venv'}\n")
        with open(os.path.join(self.work, "__main__.py"), "w") as fh:
            fh.write(PROGRAM)
        self.probe = os.path.join(self.tmp, "probe.jsonl")
        base = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        base.update({
            "PATH": f"{PULUMI_BIN}:{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
            "PULUMI_BACKEND_URL": f"file://{self.tmp}/state",
            "PULUMI_HOME": os.path.join(self.tmp, "home"),
            "PULUMI_CONFIG_PASSPHRASE": "bench",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "PYTHONWARNINGS": "ignore::FutureWarning",
        })
        self.env = probe_env(self.probe, base)
        self.schedule = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).replace(microsecond=0)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def pulumi(self, *args: str, stack: str | None = None, check: bool = True) -> tuple[float, float, float, str]:
        """(seconds, wall start, wall end, output)."""
        cmd = [str(PULUMI_BIN / "pulumi"), *args, "--non-interactive"]
        if stack:
            cmd += ["--stack", stack]
        start = time.time()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=self.work, env=self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        out = proc.stdout + proc.stderr
        if check and proc.returncode != 0:
            raise RuntimeError(f"pulumi {' '.join(args)} failed ({proc.returncode}):\n{out[-3000:]}")
        return elapsed, start, time.time(), out if proc.returncode == 0 else "FAILED\n" + out

    def new_stack(self, target: str, queue: str, count: int) -> str:
        name = f"s{uuid.uuid4().hex[:8]}"
        self.pulumi("stack", "init", name)
        for key, value in (("cloudtasks:emulatorHost", target), ("queue", queue), ("count", str(count)),
                           ("scheduleTime", self.schedule.isoformat().replace("+00:00", "Z"))):
            self.pulumi("config", "set", key, value, stack=name)
        return name

    def remove(self, stack: str) -> None:
        self.pulumi("stack", "rm", "--yes", "--force", stack=stack, check=False)

    def task_ids(self, stack: str) -> list[str]:
        _, _, _, out = self.pulumi("stack", "export", stack=stack)
        deployment = json.loads(out).get("deployment", {})
        return [r["id"] for r in deployment.get("resources") or [] if r.get("type", "").endswith("cloudtasks:Task")]

    def events(self, start: float, end: float) -> list[dict[str, Any]]:
        return [e for e in read_probe(self.probe) if start <= e["t"] <= end + 1]


def _raw_loop(target: str, queue: str, count: int, schedule: dt.datetime) -> tuple[float, float]:
    from cloudtasks_emulator.testing import make_client
    from google.cloud import tasks_v2

    client = make_client(target)
    client.get_queue(name=queue)
    names = [f"{queue}/tasks/raw-{uuid.uuid4().hex[:10]}" for _ in range(count)]
    t0 = time.perf_counter()
    for i, name in enumerate(names):
        t = tasks_v2.Task(name=name, http_request=tasks_v2.HttpRequest(
            url="https://api.example.com/reindex", http_method="POST", headers={"Content-Type": "application/json"},
            body=f'{{"i": {i}}}'.encode()), dispatch_deadline={"seconds": 60})
        t.schedule_time = schedule
        client.create_task(parent=queue, task=t)
    created = time.perf_counter() - t0
    t0 = time.perf_counter()
    for name in names:
        client.delete_task(name=name)
    return created, time.perf_counter() - t0


def _breakdown(events: list[dict[str, Any]], start: float, end: float, op: str) -> dict[str, float]:
    """Phases of one CLI run from probe events: CLI start → provider process start → first `op`
    start → last `op` end → CLI exit; plus the sum and peak concurrency of the `op` spans."""
    prov = [e for e in events if e["ev"] == "start" and "pulumi.dynamic" in " ".join(e.get("argv", []))]
    spans = [e for e in events if e.get("op") == op]
    out: dict[str, float] = {}
    if prov:
        out["provider_start"] = min(e["t"] for e in prov) - start
    if spans:
        first, last = min(e["t0"] for e in spans), max(e["t"] for e in spans)
        out["to_first_op"] = first - start
        out["ops_window"] = last - first
        out["after_last_op"] = end - last
        out["op_sum"] = sum(e["t"] - e["t0"] for e in spans)
        marks = sorted([(e["t0"], 1) for e in spans] + [(e["t"], -1) for e in spans])
        cur = peak = 0
        for _, d in marks:
            cur += d
            peak = max(peak, cur)
        out["peak_concurrency"] = peak
        out["n"] = len(spans)
    return out


def stack_up_destroy(runs: int, count: int) -> list[Figure]:
    ups, downs, raw_c, raw_d, empty_up, empty_down = [], [], [], [], [], []
    up_bd: list[dict[str, float]] = []
    down_bd: list[dict[str, float]] = []
    stacks = Stacks()
    queue = f"{LOC}/queues/stack"
    try:
        with emulator_subprocess([queue]) as emu:
            for run in range(runs):
                # Fixed cost: the same program with count=0 (CLI, engine, language host, program; no provider).
                s0 = stacks.new_stack(emu.grpc_target, queue, 0)
                empty_up.append(stacks.pulumi("up", "--yes", "--skip-preview", stack=s0)[0])
                empty_down.append(stacks.pulumi("destroy", "--yes", "--skip-preview", stack=s0)[0])
                stacks.remove(s0)
                name = stacks.new_stack(emu.grpc_target, queue, count)
                el, a, b, _ = stacks.pulumi("up", "--yes", "--skip-preview", stack=name)
                ups.append(el)
                up_bd.append(_breakdown(stacks.events(a, b), a, b, "create"))
                ids = stacks.task_ids(name)
                if len(ids) != count:
                    raise RuntimeError(f"stack has {len(ids)} tasks, expected {count}")
                el, a, b, _ = stacks.pulumi("destroy", "--yes", "--skip-preview", stack=name)
                downs.append(el)
                down_bd.append(_breakdown(stacks.events(a, b), a, b, "delete"))
                stacks.remove(name)
                c, d = _raw_loop(emu.grpc_target, queue, count, stacks.schedule)
                raw_c.append(c)
                raw_d.append(d)
                log(f"stack run {run}: up {ups[-1]:.1f}s destroy {downs[-1]:.1f}s (empty {empty_up[-1]:.1f}/"
                    f"{empty_down[-1]:.1f}s) raw {c:.2f}/{d:.2f}s; up phases {up_bd[-1]}")
    finally:
        stacks.close()

    def phases(bd: list[dict[str, float]], empty: list[float], total: list[float]) -> str:
        def m(key: str) -> float:
            return median([b[key] for b in bd if key in b])

        return (f"median phases: CLI start → provider process start {fmt(m('provider_start'), 's')} "
                f"(empty-stack run, no provider: {fmt(median(empty), 's')} in total); → first call "
                f"{fmt(m('to_first_op'), 's')}; first → last call {fmt(m('ops_window'), 's')} "
                f"({fmt(m('n'))} calls, sum of in-provider call time {fmt(m('op_sum'), 's')}, peak "
                f"{fmt(m('peak_concurrency'))} in flight); last call → CLI exit {fmt(m('after_last_op'), 's')}")

    method = (f"`pulumi up --yes --skip-preview` then `pulumi destroy --yes --skip-preview` (real CLI v3.259, subprocess, "
              f"local file backend, default --parallel) of a program declaring {count} Tasks (HTTP, scheduled 2 days "
              f"ahead) against an emulator subprocess; baseline: {count} sequential `create_task` then `delete_task` "
              "calls with the unmodified client against the same emulator, same run. Phases from a probe "
              "(`bench/_probe/sitecustomize.py`) timestamping provider process start and each "
              "TaskProvider.create/delete.")
    return [
        Figure("7a", f"{count}-task stack `pulumi up`", "s", ups, method, baseline_runs=raw_c,
               baseline_label=f"raw create_task × {count}", target="(report ratio)",
               notes=[phases(up_bd, empty_up, ups)]),
        Figure("7b", f"{count}-task stack `pulumi destroy`", "s", downs, method, baseline_runs=raw_d,
               baseline_label=f"raw delete_task × {count}", target="(report ratio)",
               notes=[phases(down_bd, empty_down, downs)]),
        Figure("7c", "empty stack `pulumi up` (fixed cost)", "s", empty_up, method, target="(report)",
               notes=[f"empty stack `pulumi destroy`: {fmt(median(empty_down), 's')}"]),
    ]


def fault_runs(runs: int, count: int) -> list[Figure]:
    fault_doc = {"rules": {"*": {"error": 0.2, "code": "UNAVAILABLE"}, "CreateTask": {"commit_then_fail": 0.05}}}
    faulty, clean, ups_needed = [], [], []
    counters: list[dict[str, Any]] = []
    final_counts: list[int] = []
    stacks = Stacks()
    try:
        for run in range(runs):
            for kind in ("clean", "faulty"):
                queue = f"{LOC}/queues/faults"
                with emulator_subprocess([queue]) as emu:
                    name = stacks.new_stack(emu.grpc_target, queue, count)
                    if kind == "faulty":
                        emu.faults("PUT", {**fault_doc, "seed": run + 1})
                    t0 = time.perf_counter()
                    attempts = 0
                    while True:  # "converge": up until it succeeds (one up is expected to suffice)
                        attempts += 1
                        el, _, _, out = stacks.pulumi("up", "--yes", "--skip-preview", stack=name, check=False)
                        if not out.startswith("FAILED") or attempts >= 5:
                            break
                    elapsed = time.perf_counter() - t0
                    snap = emu.faults("GET")
                    emu.faults("DELETE")
                    from cloudtasks_emulator.testing import make_client

                    client = make_client(emu.grpc_target)
                    in_queue = [t.name for t in client.list_tasks(request={"parent": queue, "page_size": 1000})]
                    ids = stacks.task_ids(name)
                    stacks.remove(name)
                    consistent = len(in_queue) == count and sorted(in_queue) == sorted(ids) and len(set(ids)) == count
                    if kind == "faulty":
                        faulty.append(elapsed)
                        ups_needed.append(attempts)
                        counters.append(snap.get("counters", {}))
                        final_counts.append(len(in_queue) if consistent else -len(in_queue))
                    else:
                        clean.append(elapsed)
                        if not consistent:
                            raise RuntimeError(f"clean run inconsistent: {len(in_queue)} in queue, {len(ids)} in state")
                    log(f"fault run {run} {kind}: {elapsed:.1f}s, {attempts} up(s), queue {len(in_queue)}, "
                        f"state {len(ids)}, consistent {consistent}, counters {snap.get('counters')}")
    finally:
        stacks.close()

    def total(key: str, method: str | None = None) -> list[float]:
        return [float(sum(v.get(key, 0) for m, v in c.items() if method is None or m == method)) for c in counters]

    create_calls = total("calls", "CreateTask")
    retries = [c - count for c in create_calls]
    method = (f"A fresh emulator subprocess per run; faults set through the admin endpoint "
              f"(`PUT /_emulator/faults` {json.dumps(fault_doc)}, seed = run number), i.e. 20% UNAVAILABLE before "
              f"every RPC and 5% commit-then-fail on CreateTask. `pulumi up --yes --skip-preview` of a {count}-task "
              "stack, repeated until it succeeds (time to converge = all ups); baseline: the same stack and "
              "emulator setup without faults, alternating. Then faults off, ListTasks vs `pulumi stack export`.")
    return [
        Figure("8a", f"{count}-task stack up under faults: time to converge", "s", faulty, method,
               baseline_runs=clean, baseline_label="same stack, no faults", target="converges; exactly "
               f"{count} tasks", passed=all(c == count for c in final_counts),
               notes=[f"`pulumi up` runs needed: {ups_needed}; final task counts in the queue (negative = state and "
                      f"queue disagree): {final_counts}"]),
        Figure("8b", "retries used (CreateTask calls beyond the first per task)", "calls", retries,
               method + " From the injector's counters.", target="(report)",
               notes=[f"injected UNAVAILABLE errors (all RPCs) per run: {[int(x) for x in total('errors')]}; "
                      f"commit-then-fail replies: {[int(x) for x in total('commit_then_fail')]}; GetTask calls "
                      f"(adoption after ALREADY_EXISTS): {[int(x) for x in total('calls', 'GetTask')]}"]),
    ]
