"""Shared pieces of the benchmarks: statistics, figures, the machine, processes, raw gRPC callers,
a no-op HTTP worker. Benchmarks measure; they never assert on time (no timed tests anywhere)."""
from __future__ import annotations

import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
VENV_PY = str(ROOT / ".venv" / "bin" / "python")
PULUMI_BIN = ROOT / ".tools" / "bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")
READY_RE = re.compile(r"export CLOUD_TASKS_EMULATOR_HOST=(\S+)")
HTTP_RE = re.compile(r"REST and OIDC discovery on (\S+)")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- statistics and figures -----------------------------------------------------------------------

def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def fmt(x: float | None, unit: str = "", digits: int = 3) -> str:
    if x is None or x != x:
        return "–"
    if abs(x) >= 1000:
        text = f"{x:,.0f}"
    elif abs(x) >= 100:
        text = f"{x:.0f}"
    else:
        text = f"{x:.{digits}g}"
    return f"{text} {unit}".strip()


def spread(xs: list[float], unit: str = "") -> str:
    """``median (min–max, n=N)``."""
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{fmt(xs[0], unit)} (n=1)"
    return f"{fmt(median(xs), unit)} ({fmt(min(xs))}–{fmt(max(xs))}, n={len(xs)})"


@dataclass
class Figure:
    """One line of the table: a measured value (median of runs), optionally a baseline and a target."""

    key: str
    title: str
    unit: str
    runs: list[float]
    method: str
    baseline_runs: list[float] | None = None
    baseline_label: str = ""
    # ratio = value / baseline (or baseline / value when higher_is_better for throughput-like units)
    ratio_kind: str = "value/baseline"
    target: str = ""
    passed: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def value(self) -> float:
        return median(self.runs)

    @property
    def ratio(self) -> float | None:
        if not self.baseline_runs:
            return None
        base = median(self.baseline_runs)
        return self.value / base if base else None

    def status(self) -> str:
        return "–" if self.passed is None else ("PASS" if self.passed else "MISS")


# --- the machine ------------------------------------------------------------------------------------

def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def machine_info() -> dict[str, str]:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    info = {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    try:
        import grpc
        from importlib.metadata import version

        info["grpcio"] = grpc.__version__
        info["pulumi (Python SDK)"] = version("pulumi")
        info["protobuf"] = version("protobuf")
        info["google-cloud-tasks"] = version("google-cloud-tasks")
    except Exception:  # pragma: no cover
        pass
    try:
        info["pulumi (CLI)"] = subprocess.run([str(PULUMI_BIN / "pulumi"), "version"], capture_output=True,
                                              text=True, timeout=30).stdout.strip()
    except Exception:
        info["pulumi (CLI)"] = "not built"
    return info


# --- /proc ------------------------------------------------------------------------------------------

def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        text = fh.read()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat


def proc_status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def process_tree_cpu(pid: int) -> float:
    return proc_cpu_seconds(pid)


# --- an emulator in a subprocess --------------------------------------------------------------------

@dataclass
class EmulatorProc:
    process: subprocess.Popen
    grpc_target: str
    http_url: str | None
    stderr: Any = None  # the process's stderr, a file (its log)

    def log_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    @property
    def pid(self) -> int:
        return self.process.pid

    def faults(self, verb: str = "GET", doc: dict | None = None) -> dict:
        req = urllib.request.Request(f"{self.http_url}/_emulator/faults", method=verb,
                                     data=json.dumps(doc).encode() if doc is not None else None,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())


@contextmanager
def emulator_subprocess(queues: list[str] = (), extra: list[str] = ()) -> Iterator[EmulatorProc]:
    """``python -m cloudtasks_emulator start --port 0 --http-port 0`` until the block ends."""
    args = [VENV_PY, "-m", "cloudtasks_emulator", "start", "--port", "0", "--http-port", "0", *extra]
    for q in queues:
        args += ["--queue", q]
    with ready_subprocess(args) as handle:
        yield handle


@contextmanager
def ready_subprocess(args: list[str]) -> Iterator[EmulatorProc]:
    """A server process that prints ``export CLOUD_TASKS_EMULATOR_HOST=…`` when ready."""
    errf = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errf, text=True)
    try:
        line = _readline_with_timeout(proc, 60)
        match = READY_RE.search(line or "")
        if not match:
            errf.seek(0)
            raise RuntimeError(f"emulator did not start: {errf.read()[-2000:]}")
        errf.seek(0)
        http = HTTP_RE.search(errf.read())
        yield EmulatorProc(proc, match.group(1), http.group(1) if http else None, errf)
    finally:
        stop_process(proc)
        errf.close()


def _readline_with_timeout(proc: subprocess.Popen, timeout: float) -> str:
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    return out[0] if out else ""


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- raw gRPC callers (low client overhead: pb2 messages on a plain channel) ------------------------

def raw_callables(target: str) -> tuple[Any, dict[str, Callable]]:
    """A fresh channel to ``target`` and unary callables for every CloudTasks RPC."""
    import grpc
    from cloudtasks_emulator.core.methods import METHODS, SERVICE_NAME

    channel = grpc.insecure_channel(target)
    calls = {name: channel.unary_unary(f"/{SERVICE_NAME}/{name}", request_serializer=m.request.SerializeToString,
                                       response_deserializer=m.response.FromString)
             for name, m in METHODS.items()}
    return channel, calls


def create_queue(target: str, name: str) -> None:
    from cloudtasks_emulator.core.methods import METHODS

    channel, calls = raw_callables(target)
    try:
        parent = name.rsplit("/queues/", 1)[0]
        calls["CreateQueue"](METHODS["CreateQueue"].request(parent=parent, queue={"name": name}), timeout=30)
    finally:
        channel.close()


def run_concurrently(n_threads: int, work: Callable[[int], None]) -> float:
    """Start ``n_threads`` threads running ``work(i)`` behind a barrier; wall seconds until all end."""
    barrier = threading.Barrier(n_threads + 1)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        barrier.wait()
        try:
            work(i)
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n_threads)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} callers failed; first: {errors[0]!r}")
    return elapsed


# --- a no-op HTTP worker ----------------------------------------------------------------------------

class Worker:
    """ThreadingHTTPServer on a free loopback port; records (received_at, done_at, eta, task) per
    request, optionally sleeping ``delay`` seconds in the handler."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.records: list[tuple[float, float, float, str]] = []
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                received = time.time()
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if outer.delay:
                    time.sleep(outer.delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                done = time.time()
                eta = float(self.headers.get("X-CloudTasks-TaskETA") or "nan")
                with outer.cond:
                    outer.records.append((received, done, eta, self.headers.get("X-CloudTasks-TaskName", "")))
                    outer.cond.notify_all()

            do_POST = do_GET = do_PUT = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/work"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "Worker":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.records = []

    def wait_for(self, n: int, timeout: float) -> bool:
        deadline = time.time() + timeout
        with self.cond:
            while len(self.records) < n:
                left = deadline - time.time()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of events in any half-open window of ``window`` seconds."""
    s = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(s):
        while s[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


class WorkerProcess:
    """``Worker`` with the same ``url``/``reset``/``wait_for``/``records``, run in its own process
    (bench/worker_process.py): receive times free of the bench process's GIL."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([VENV_PY, str(BENCH / "worker_process.py")], stdout=subprocess.PIPE, text=True,
                                     cwd=str(BENCH))
        line = _readline_with_timeout(self.proc, 30)
        if not line:
            stop_process(self.proc)
            raise RuntimeError("bench/worker_process.py did not start")
        self.url, self._control = line.split()

    def __enter__(self) -> "WorkerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc)

    @property
    def records(self) -> list[tuple[float, float, float, str]]:
        with urllib.request.urlopen(self._control, timeout=30) as resp:
            return [tuple(r) for r in json.loads(resp.read())]

    def _count(self) -> int:
        with urllib.request.urlopen(self._control + "/count", timeout=30) as resp:
            return int(json.loads(resp.read()))

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(self._control, data=b"", method="POST"), timeout=30).close()

    def wait_for(self, n: int, timeout: float) -> bool:
        deadline = time.time() + timeout
        while self._count() < n:
            if time.time() >= deadline:
                return False
            time.sleep(0.05)
        return True
