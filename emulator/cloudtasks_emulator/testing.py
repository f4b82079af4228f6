"""Helpers to run the emulator from tests and to point an unmodified client at it.

    with run_emulator(queues=["projects/p/locations/l/queues/q"]) as emu:
        client = make_client(emu.grpc_target)
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from .server import EmulatorConfig, EmulatorServer

_READY_RE = re.compile(r"export CLOUD_TASKS_EMULATOR_HOST=(\S+)")
_HTTP_RE = re.compile(r"REST and OIDC discovery on (\S+)")


@dataclass
class EmulatorHandle:
    grpc_target: str
    http_url: str | None
    data_dir: str | None
    clock: Any = None
    service: Any = None
    server: EmulatorServer | None = None
    process: subprocess.Popen[str] | None = None

    def kill(self) -> None:
        """kill -9 the subprocess (subprocess mode only): nothing gets to clean up."""
        assert self.process is not None, "kill() needs run_emulator(in_process=False)"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@contextmanager
def run_emulator(in_process: bool = True, **config: Any) -> Iterator[EmulatorHandle]:
    """Start an emulator on free ports (unless ``port``/``http_port`` are given) and stop it after.

    ``config`` takes the fields of ``EmulatorConfig``; in subprocess mode only those the CLI has
    (data_dir, queues, config_file, auto_create_queues, name_reservation, app_engine_url, host).
    """
    config.setdefault("port", 0)
    config.setdefault("http_port", 0)
    if in_process:
        server = EmulatorServer(EmulatorConfig(**config)).start()
        clock = config.get("clock")
        try:
            yield EmulatorHandle(server.grpc_target, server.http_url, config.get("data_dir"),
                                 clock=clock if hasattr(clock, "advance") else None,
                                 service=server.service, server=server)
        finally:
            server.stop()
        return
    with _subprocess(config) as handle:
        yield handle


@contextmanager
def _subprocess(config: dict[str, Any]) -> Iterator[EmulatorHandle]:
    args = [sys.executable, "-m", "cloudtasks_emulator", "start",
            "--port", str(config.pop("port")), "--http-port", str(config.pop("http_port"))]
    flags = {"host": "--host", "data_dir": "--data-dir", "config_file": "--config",
             "app_engine_url": "--app-engine-url"}
    for key, flag in flags.items():
        if config.get(key) is not None:
            args += [flag, str(config.pop(key))]
        config.pop(key, None)
    for name in config.pop("queues", []):
        args += ["--queue", name]
    if config.pop("auto_create_queues", False):
        args.append("--auto-create-queues")
    if "name_reservation" in config:
        args += ["--name-reservation", f"{config.pop('name_reservation')}s"]
    if config:
        raise TypeError(f"not available in subprocess mode: {sorted(config)}")
    stderr = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        target = _read_ready_line(process, stderr)
        stderr.seek(0)
        http = _HTTP_RE.search(stderr.read())
        yield EmulatorHandle(target, http.group(1) if http else None, _arg(args, "--data-dir"), process=process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        stderr.close()


def _read_ready_line(process: subprocess.Popen[str], stderr: Any, timeout: float = 30.0) -> str:
    """The gRPC target from the one line the CLI prints when ready."""
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(process.stdout.readline() if process.stdout else ""),
                              daemon=True)
    reader.start()
    reader.join(timeout)
    match = _READY_RE.search(found[0]) if found else None
    if match is None:
        process.kill()
        stderr.seek(0)
        raise RuntimeError(f"emulator did not start: {stderr.read()[-2000:]}")
    return match.group(1)


def _arg(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def make_client(target: str, transport: str = "grpc") -> Any:
    """An unmodified ``tasks_v2.CloudTasksClient`` for the emulator at ``target`` with anonymous
    credentials: ``host:port`` of gRPC, or the ``http://host:port`` of the HTTP server for REST."""
    import grpc
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks import transports

    if transport == "grpc":
        channel = grpc.insecure_channel(target)
        return tasks_v2.CloudTasksClient(transport=transports.CloudTasksGrpcTransport(channel=channel))
    if transport == "rest":
        endpoint = target if target.startswith("http") else f"http://{target}"
        return tasks_v2.CloudTasksClient(transport="rest", credentials=AnonymousCredentials(),
                                         client_options=ClientOptions(api_endpoint=endpoint))
    raise ValueError(f"unknown transport {transport!r}: grpc or rest")


__all__ = ["EmulatorHandle", "make_client", "run_emulator"]
