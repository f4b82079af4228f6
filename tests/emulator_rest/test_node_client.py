"""The unmodified Node.js @google-cloud/tasks client (from npm) against the emulator over gRPC.

Dependencies are installed from tests/node/package-lock.json by ``npm ci`` when node_modules is
missing. No silent skip: without node/npm, or when the install fails, the test fails with the reason.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from cloudtasks_emulator.testing import run_emulator

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def _ensure_node_modules() -> None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not on PATH; the Node.js client test needs Node.js >= 18 and npm")
    if (NODE_DIR / "node_modules" / "@google-cloud" / "tasks").is_dir():
        return
    cmd = ["npm", "ci", "--no-audit", "--no-fund"] if (NODE_DIR / "package-lock.json").exists() else \
        ["npm", "install", "--no-audit", "--no-fund"]
    try:
        done = subprocess.run(cmd, cwd=NODE_DIR, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(cmd)}` in {NODE_DIR} took more than 10 minutes")
    if done.returncode != 0:
        pytest.fail(f"`{' '.join(cmd)}` in {NODE_DIR} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def test_node_client_create_get_list_run_delete(worker) -> None:
    _ensure_node_modules()
    queue = f"projects/node-{uuid.uuid4().hex[:8]}/locations/us-central1/queues/node-q"
    with run_emulator() as emu:
        env = dict(os.environ, CLOUD_TASKS_EMULATOR_HOST=emu.grpc_target, QUEUE=queue, WORKER_URL=worker.url)
        done = subprocess.run(["node", "smoke.mjs"], cwd=NODE_DIR, env=env, capture_output=True, text=True,
                              timeout=120)
    assert done.returncode == 0, f"smoke.mjs failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    out = json.loads(done.stdout.strip().splitlines()[-1])
    first = f"{queue}/tasks/node-task-1"
    assert out["queue"] == {"name": queue, "state": "RUNNING"}
    assert out["created"] == {"name": first, "view": "FULL", "body": "hello from node"}
    assert out["got"] == {"name": first, "view": "BASIC", "hasBody": False}
    assert first in out["listed"] and out["deleted"] in out["listed"] and len(out["listed"]) == 2
    assert out["ran"]["name"] == first and out["ran"]["dispatchCount"] >= 0
    assert out["getAfterDelete"] == "NOT_FOUND"
    assert [r["body"] for r in worker.requests] == [b"hello from node"]  # run exactly once
    assert out["remaining"] in ([], [first])  # the run task is gone once its 200 is recorded
