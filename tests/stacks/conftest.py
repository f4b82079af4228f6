"""Fixtures of the stack tests: the sample workers (examples/worker.py) the examples' tasks go to.

The emulator and the ephemeral stacks come from our pytest plugin (``pulumi_cloudtasks.testing``):
this conftest only overrides ``cloudtasks_emulator_config`` so App Engine tasks reach a worker.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pulumi_cloudtasks.testing import wait_for

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "examples" / "worker.py"


class Worker:
    """examples/worker.py in a subprocess, with its JSONL record of every request it answered."""

    def __init__(self, tmp: Path, name: str, *args: str) -> None:
        self.record = tmp / f"{name}.jsonl"
        self.log = tmp / f"{name}.log"
        self._log = open(self.log, "w+", encoding="utf-8")
        self.process = subprocess.Popen([sys.executable, "-u", str(WORKER), "--port", "0", "--record",
                                         str(self.record), *args], stdout=self._log, stderr=subprocess.STDOUT)
        self.url = wait_for(self._listening, timeout=30, message=f"worker {name} listening (log {self.log})")

    def _listening(self) -> str | None:
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited: {self.log.read_text()}")
        match = re.search(r"listening on (\S+)", self.log.read_text())
        return match.group(1) if match else None

    def requests(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]

    def wait_for_request(self, match: Callable[[dict[str, Any]], bool], what: str,
                         timeout: float = 30.0) -> dict[str, Any]:
        """The first request answered 200 that ``match`` accepts, polling until ``timeout``."""
        return wait_for(lambda: next((r for r in self.requests() if r["status"] == 200 and match(r)), None),
                        timeout=timeout, interval=0.1, message=f"{what} reached the worker")

    def got_task(self, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_for_request(lambda r: r["headers"].get("X-CloudTasks-TaskName") == task_id,
                                     f"task {task_id}", timeout)

    def count(self, match: Callable[[dict[str, Any]], bool]) -> int:
        return sum(1 for r in self.requests() if match(r))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def workers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workers")


@pytest.fixture(scope="session")
def http_worker(workers_dir: Path) -> Iterator[Worker]:
    """Plain HTTP worker: HTTP tasks and (as the emulator's App Engine URL) App Engine tasks."""
    worker = Worker(workers_dir, "http")
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def cloudtasks_emulator_config(http_worker: Worker) -> dict[str, Any]:
    return {"auto_create_queues": True, "app_engine_url": http_worker.url}


@pytest.fixture(scope="session")
def oidc_worker(workers_dir: Path, cloudtasks_emulator: Any) -> Iterator[Worker]:
    """HTTPS worker verifying OIDC tokens against the emulator's JWKS (401 when invalid)."""
    worker = Worker(workers_dir, "oidc", "--tls", "--issuer", cloudtasks_emulator.http_url)
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def oauth_worker(workers_dir: Path) -> Iterator[Worker]:
    """HTTPS worker that accepts the emulator's opaque OAuth tokens (no verification)."""
    worker = Worker(workers_dir, "oauth", "--tls")
    yield worker
    worker.stop()

