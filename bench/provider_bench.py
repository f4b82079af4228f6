"""Figure 6: Create through the SDK's ``python -m pulumi.dynamic`` server (driven over gRPC the way the
engine drives it) vs a raw ``create_task`` loop with the google-cloud-tasks client, against the same
emulator in the same run; and how many clients the provider process constructs."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import tempfile
import time
import uuid
from typing import Any

from common import BENCH, VENV_PY, Figure, emulator_subprocess, fmt, log, median, spread, stop_process

QUEUE = "projects/bench/locations/us-central1/queues/provider"
URN = "urn:pulumi:bench::bench::pulumi-python:dynamic/cloudtasks:Task::t{}"


def task_props(i: int, schedule_time: str) -> dict[str, Any]:
    return {
        "queue": QUEUE,
        "http_request": {"url": "https://api.example.com/reindex", "http_method": "POST",
                         "headers": {"Content-Type": "application/json"}, "body": f'{{"i": {i}}}'},
        "schedule_time": schedule_time,
        "dispatch_deadline": "60s",
    }


def probe_env(log_path: str, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(base if base is not None else os.environ)
    env.pop("CLOUD_TASKS_EMULATOR_HOST", None)
    env["PYTHONPATH"] = str(BENCH / "_probe") + os.pathsep + str(BENCH) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["BENCH_PROBE_LOG"] = log_path
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def read_probe(path: str) -> list[dict[str, Any]]:
    try:
        with open(path) as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []


class DynamicServer:
    """``python -m pulumi.dynamic`` in a subprocess, with the handshake and Configure the engine does."""

    def __init__(self, emulator_target: str, log_path: str) -> None:
        import grpc
        from google.protobuf import struct_pb2
        from pulumi.dynamic.dynamic import serialize_provider
        from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc
        from pulumi_cloudtasks.provider import TaskProvider

        self.pb = provider_pb2
        self.struct_pb2 = struct_pb2
        from noop_provider import NoopProvider

        self.provider = serialize_provider(TaskProvider())
        self.noop_provider = serialize_provider(NoopProvider())
        env = probe_env(log_path)
        env["PULUMI_PROJECT"] = "bench"
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([VENV_PY, "-u", "-m", "pulumi.dynamic"], stdout=subprocess.PIPE, env=env)
        port = int(self.proc.stdout.readline().decode().strip())
        self.handshake_s = time.perf_counter() - t0
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        config = {"cloudtasks:emulatorHost": emulator_target}
        self.stub.Configure(provider_pb2.ConfigureRequest(variables=config, args=self._struct(config)))
        self.ready_s = time.perf_counter() - t0

    def _struct(self, d: dict) -> Any:
        s = self.struct_pb2.Struct()
        s.update(d)
        return s

    def check(self, i: int, props: dict, noop: bool = False) -> Any:
        provider = self.noop_provider if noop else self.provider
        resp = self.stub.Check(self.pb.CheckRequest(
            urn=URN.format(i), olds=self._struct({}),
            news=self._struct({**props, "__provider": provider, "__name": f"t{i}"})))
        if resp.failures:
            raise RuntimeError(f"check failed: {resp.failures}")
        return resp.inputs

    def create(self, i: int, inputs: Any) -> str:
        return self.stub.Create(self.pb.CreateRequest(urn=URN.format(i), properties=inputs)).id

    def close(self) -> None:
        self.channel.close()
        stop_process(self.proc)


def provider_vs_raw(runs: int, count: int) -> list[Figure]:
    from cloudtasks_emulator.testing import make_client
    from google.cloud import tasks_v2

    schedule = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).replace(microsecond=0)
    schedule_text = schedule.isoformat().replace("+00:00", "Z")
    prov, raw, checks, floor = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-provider-") as tmp, emulator_subprocess([QUEUE]) as emu:
        log_path = os.path.join(tmp, "probe.jsonl")
        server = DynamicServer(emu.grpc_target, log_path)
        raw_client = make_client(emu.grpc_target)  # the unmodified client, built once
        raw_client.get_queue(name=QUEUE)  # connect
        try:
            for run in range(runs + 1):  # run 0 warms both paths (imports, connections) and is discarded
                # Raw: the same tasks through CloudTasksClient.create_task, one after another.
                tasks = []
                for i in range(count):
                    t = tasks_v2.Task(name=f"{QUEUE}/tasks/raw-{run}-{i}-{uuid.uuid4().hex[:4]}",
                                      http_request=tasks_v2.HttpRequest(
                                          url="https://api.example.com/reindex", http_method="POST",
                                          headers={"Content-Type": "application/json"}, body=f'{{"i": {i}}}'.encode()),
                                      dispatch_deadline={"seconds": 60})
                    t.schedule_time = schedule
                    tasks.append(t)
                t0 = time.perf_counter()
                for t in tasks:
                    raw_client.create_task(parent=QUEUE, task=t)
                r = (time.perf_counter() - t0) / count
                # Provider: Check (untimed: it makes no API call) then Create RPCs, one after another.
                t0 = time.perf_counter()
                inputs = [server.check(run * count + i, task_props(i, schedule_text)) for i in range(count)]
                c = (time.perf_counter() - t0) / count
                t0 = time.perf_counter()
                for i, inp in enumerate(inputs):
                    server.create(run * count + i, inp)
                p = (time.perf_counter() - t0) / count
                # Floor: the same Create RPCs to a do-nothing dynamic provider in the same server process.
                noop_inputs = [server.check(i, task_props(i, schedule_text), noop=True) for i in range(count)]
                t0 = time.perf_counter()
                for i, inp in enumerate(noop_inputs):
                    server.create(i, inp)
                f = (time.perf_counter() - t0) / count
                if run:
                    floor.append(f * 1000)
                    raw.append(r * 1000)
                    prov.append(p * 1000)
                    checks.append(c * 1000)
                log(f"provider run {run}: raw {r * 1000:.2f} ms/task, dynamic Create {p * 1000:.2f} ms/task, "
                    f"Check {c * 1000:.2f} ms, no-op dynamic provider Create {f * 1000:.2f} ms")
        finally:
            server.close()
        events = read_probe(log_path)
    clients = [e for e in events if e["ev"] == "client" and e["pid"] == server.proc.pid]
    creates = [e for e in events if e.get("op") == "create" and e["pid"] == server.proc.pid]
    inside = median([(e["t"] - e["t0"]) * 1000 for e in creates[count:]]) if len(creates) > count else float("nan")
    method = (f"Emulator subprocess; `python -u -m pulumi.dynamic` subprocess driven over gRPC as the engine does "
              f"(stdout port handshake, Configure with `cloudtasks:emulatorHost`, then Check and Create with the "
              f"pickled provider in `__provider`); {count} Create RPCs one after another per run vs {count} "
              "`CloudTasksClient.create_task` calls (unmodified client from `cloudtasks_emulator.testing.make_client`) "
              "in the bench process, alternating, warm-up run discarded. Same task shape (HTTP POST with header and "
              "body, scheduled a day ahead). Per-task mean of each run.")
    n_clients = len(clients)
    return [
        Figure("6a", "provider Create via `python -m pulumi.dynamic` (per task)", "ms", prov, method,
               baseline_runs=raw, baseline_label="raw `create_task` loop", target="≤ 2× baseline",
               passed=median(prov) / median(raw) <= 2.0,
               notes=[f"time inside TaskProvider.create (probe): median {fmt(inside, 'ms')}; Check RPC "
                      f"{fmt(median(checks), 'ms')} per task; provider process start → port "
                      f"{fmt(server.handshake_s, 's')}, → Configure done {fmt(server.ready_s, 's')}",
                      f"floor: the same Create RPCs to a do-nothing dynamic provider (`bench/noop_provider.py`) in the "
                      f"same server cost {spread(floor, 'ms')} per task, i.e. {median(floor) / median(raw):.2f}× the raw "
                      "call before any API call is made: the SDK's per-RPC work (property (de)serialization, "
                      "`configure(Settings)` and a new asyncio event loop per call) plus the loopback gRPC hop."]),
        Figure("6b", "CloudTasksClient constructions in the provider process", "clients", [float(n_clients)],
               f"A probe (`bench/_probe/sitecustomize.py`, on PYTHONPATH of the provider process) counts "
               f"`CloudTasksClient.__init__` calls; {len(creates)} creates were served.",
               target="exactly 1 per process", passed=n_clients == 1),
    ]


# --- 6c. What a nested call costs: grpcio alone, no Pulumi --------------------------------------------

_RELAY = '''
import sys, threading
from concurrent import futures
import grpc
from google.protobuf import empty_pb2
from cloudtasks_emulator.core.methods import METHODS, SERVICE_NAME

emulator, queue = sys.argv[1], sys.argv[2]
channel = grpc.insecure_channel(emulator)
create = channel.unary_unary(f"/{SERVICE_NAME}/CreateTask", request_serializer=METHODS["CreateTask"].request.SerializeToString,
                             response_deserializer=METHODS["CreateTask"].response.FromString)
counter = iter(range(10**9))

def relay(request, context):  # one blocking CreateTask per call, like a provider's create
    req = METHODS["CreateTask"].request(parent=queue)
    req.task.name = f"{queue}/tasks/relay-{next(counter)}"
    req.task.http_request.url = "https://api.example.com/reindex"
    req.task.schedule_time.GetCurrentTime()
    req.task.schedule_time.seconds += 86400
    create(req, timeout=30)
    return empty_pb2.Empty()

def noop(request, context):
    return empty_pb2.Empty()

server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))  # as `python -m pulumi.dynamic` does
handlers = {name: grpc.unary_unary_rpc_method_handler(fn, request_deserializer=empty_pb2.Empty.FromString,
                                                      response_serializer=empty_pb2.Empty.SerializeToString)
            for name, fn in (("Relay", relay), ("Noop", noop))}
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Relay", handlers),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(f"export CLOUD_TASKS_EMULATOR_HOST=127.0.0.1:{port}", flush=True)
threading.Event().wait()
'''


def nested_call(runs: int, count: int) -> list[Figure]:
    """A plain grpcio server (4 threads, like the SDK's) whose handler makes one CreateTask to the
    emulator, called one call at a time, against the same server's do-nothing handler and against
    calling the emulator directly: how much of 6a is just two round trips instead of one."""
    import grpc
    from google.protobuf import empty_pb2

    from common import ready_subprocess, raw_callables
    from emulator_bench import _task_request

    relay_t, noop_t, direct_t = [], [], []
    with emulator_subprocess([QUEUE]) as emu, ready_subprocess([VENV_PY, "-c", _RELAY, emu.grpc_target, QUEUE]) as relay:
        channel = grpc.insecure_channel(relay.grpc_target)
        grpc.channel_ready_future(channel).result(timeout=30)
        calls = {name: channel.unary_unary(f"/bench.Relay/{name}", request_serializer=empty_pb2.Empty.SerializeToString,
                                           response_deserializer=empty_pb2.Empty.FromString) for name in ("Relay", "Noop")}
        emu_channel, emu_calls = raw_callables(emu.grpc_target)
        try:
            for run in range(runs + 1):
                reqs = [_task_request(QUEUE, f"direct-{run}-{i}-{uuid.uuid4().hex[:4]}", "https://api.example.com/reindex",
                                      86400) for i in range(count)]
                timings = []
                for call in (lambda _i: calls["Relay"](empty_pb2.Empty(), timeout=30),
                             lambda _i: calls["Noop"](empty_pb2.Empty(), timeout=30),
                             lambda i: emu_calls["CreateTask"](reqs[i], timeout=30)):
                    t0 = time.perf_counter()
                    for i in range(count):
                        call(i)
                    timings.append((time.perf_counter() - t0) / count * 1000)
                if run:
                    relay_t.append(timings[0])
                    noop_t.append(timings[1])
                    direct_t.append(timings[2])
                log(f"nested run {run}: relay {timings[0]:.2f} ms, its no-op {timings[1]:.2f} ms, direct {timings[2]:.2f} ms")
        finally:
            channel.close()
            emu_channel.close()
    method = ("`bench/provider_bench.py` `_RELAY`: a grpcio server in its own process (ThreadPoolExecutor(4), as "
              "`python -m pulumi.dynamic`), whose `Relay` handler makes one blocking raw CreateTask to the emulator; "
              f"{count} calls one after another per run from the bench process, against the same server's no-op "
              "handler and against raw CreateTask calls straight to the emulator; warm-up run discarded.")
    return [Figure("6c", "a call whose handler makes one CreateTask (grpcio only, no Pulumi)", "ms", relay_t, method,
                   baseline_runs=direct_t, baseline_label="the CreateTask call made directly",
                   target="(no target; explains 6a)",
                   notes=[f"the same server's do-nothing handler: {spread(noop_t, 'ms')} per call; no-op + direct = "
                          f"{median(noop_t) + median(direct_t):.2f} ms against {median(relay_t):.2f} ms for the nested call: "
                          "a nested call costs two round trips, so any server in front of CreateTask starts near 2×."])]
