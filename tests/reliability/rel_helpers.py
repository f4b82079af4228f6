"""Helpers of the reliability tests: names, condition waits, a recording HTTP worker, a subprocess
emulator we fully control (flags, umask, stderr), and ephemeral Pulumi stacks on a file backend."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv"
TOOLS_BIN = ROOT / ".tools" / "bin"
STACKS = Path(__file__).resolve().parent / "stacks"

LOCATION = "projects/rel-project/locations/us-central1"
QUEUE = f"{LOCATION}/queues/reliability"
TASK_TYPE = "pulumi-python:dynamic/cloudtasks:Task"


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, message: str = "condition",
               interval: float = 0.02) -> Any:
    """Poll ``predicate`` until truthy; tests synchronise on conditions with deadlines, never on sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


# --- A recording worker ---------------------------------------------------------------------------

@dataclass
class Delivery:
    phase: int
    task_id: str
    retry_count: int
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answered: bool = False  # the 2xx was written and flushed to the emulator


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a killed emulator resets its connections: expected, not worth a traceback


class RecordingWorker:
    """Answers 200 to everything and records each request with the current ``phase``. While
    ``hold`` is set, requests wait (up to ``hold_timeout``) before answering. ``on_answered`` runs
    in the handler thread right after a 2xx was flushed (the crash test kills the emulator there)."""

    def __init__(self, tls_context: Any = None) -> None:
        self.deliveries: list[Delivery] = []
        self.phase = 1
        self.hold = threading.Event()
        self.hold_timeout = 60.0
        self.on_answered: Callable[[Delivery], None] | None = None
        self.hold_if: Callable[[Delivery], bool] | None = None  # held until ``release_held`` is set
        self.release_held = threading.Event()
        self._cond = threading.Condition()
        worker = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()}
                record = Delivery(worker.phase, headers.get("X-CloudTasks-TaskName", ""),
                                  int(headers.get("X-CloudTasks-TaskRetryCount", "-1")), self.command, self.path,
                                  headers, body)
                with worker._cond:
                    worker.deliveries.append(record)
                    worker._cond.notify_all()
                held = worker.hold_if is not None and worker.hold_if(record)
                deadline = time.monotonic() + worker.hold_timeout
                while time.monotonic() < deadline and (
                        worker.hold.is_set() or (held and not worker.release_held.is_set())):
                    time.sleep(0.01)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    self.wfile.flush()
                except OSError:
                    return
                with worker._cond:
                    record.answered = True
                    worker._cond.notify_all()
                if worker.on_answered is not None:
                    worker.on_answered(record)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        if tls_context is not None:
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def snapshot(self) -> list[Delivery]:
        with self._cond:
            return list(self.deliveries)

    def stop(self) -> None:
        self.hold.clear()
        self.release_held.set()
        self.server.shutdown()
        self.server.server_close()


# --- A subprocess emulator with every flag ----------------------------------------------------------

_READY_RE = re.compile(r"export CLOUD_TASKS_EMULATOR_HOST=(\S+)")
_HTTP_RE = re.compile(r"REST and OIDC discovery on (\S+)")


class EmulatorProcess:
    """``python -m cloudtasks_emulator start …`` with its stderr in a file we can read at any time."""

    def __init__(self, args: Sequence[str], log_path: Path, umask: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w+", encoding="utf-8")
        cmd = [sys.executable, "-m", "cloudtasks_emulator", "start", *args]
        kwargs: dict[str, Any] = {}
        if umask is not None:
            kwargs["umask"] = umask
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                        env=env, **kwargs)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        match = _READY_RE.search(line[0]) if line else None
        if match is None:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"emulator did not start: {self.stderr()[-3000:]}")
        self.grpc_target = match.group(1)
        http = _HTTP_RE.search(self.stderr())
        self.http_url = http.group(1) if http else None

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill9(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()

    def __enter__(self) -> "EmulatorProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


# --- Ephemeral stacks -------------------------------------------------------------------------------

def pulumi_env(backend: Path) -> dict[str, str]:
    """The environment of the Pulumi CLI: our built CLI and venv first, a file backend in tmp."""
    path = os.pathsep.join([str(TOOLS_BIN), str(VENV / "bin"), os.environ.get("PATH", "")])
    env = {
        "PATH": path,
        "VIRTUAL_ENV": str(VENV),
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": "reliability-passphrase",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        "PYTHONWARNINGS": "ignore::FutureWarning",
    }
    return env


def copy_program(name: str, dest: Path) -> Path:
    """Copy ``stacks/<name>`` to ``dest`` (config files land there, never in the repo) and point its
    runtime at the repository's virtualenv by absolute path."""
    work = dest / name
    shutil.copytree(STACKS / name, work)
    text = (work / "Pulumi.yaml").read_text()
    (work / "Pulumi.yaml").write_text(text.replace("__VENV__", str(VENV)))
    return work


def make_stack(name: str, tmp: Path, config: dict[str, Any], monkeypatch: Any,
               secret_keys: Sequence[str] = ()) -> tuple[Any, Path]:
    """A new stack of program ``name`` on a file backend in ``tmp``; returns (stack, backend dir).
    ``secret_keys`` are set as secret config (encrypted in the stack's config file)."""
    from pulumi import automation as auto

    backend = tmp / "backend"
    backend.mkdir()
    env = pulumi_env(backend)
    for key, value in env.items():  # the Automation API itself runs `pulumi` from this process's PATH
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CLOUD_TASKS_EMULATOR_HOST", raising=False)  # the stack config must decide
    work = copy_program(name, tmp)
    stack = auto.create_stack("rel", work_dir=str(work),
                              opts=auto.LocalWorkspaceOptions(work_dir=str(work), env_vars=env))
    stack.set_all_config({k: auto.ConfigValue(value=v if isinstance(v, str) else json.dumps(v),
                                                  secret=k in secret_keys)
                          for k, v in config.items()})
    return stack, backend


def state_resources(stack: Any, type_: str = TASK_TYPE) -> list[dict[str, Any]]:
    deployment = stack.export_stack().deployment
    return [r for r in (deployment.get("resources") or []) if r.get("type") == type_]


@dataclass
class Clients:
    """One gRPC client per thread (the load test's 16 clients)."""

    target: str
    _local: threading.local = field(default_factory=threading.local)

    def get(self) -> Any:
        from cloudtasks_emulator.testing import make_client

        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = make_client(self.target)
        return client
