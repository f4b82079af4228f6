"""TaskProvider against the emulator, with a local worker receiving the tasks."""
from __future__ import annotations

import importlib.util
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from provider_helpers import QUEUE, http_props
from pulumi_cloudtasks import client, spec
from pulumi_cloudtasks.provider import TaskProvider

from cloudtasks_emulator import testing
from cloudtasks_emulator.core.clock import ManualClock

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ct_example_worker", ROOT / "examples" / "worker.py")
worker_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker_mod)


class Worker:
    """examples/worker.py in a thread: records every request; optional TLS and OIDC verification."""

    def __init__(self, tmp: Path, tls: bool = False, issuer: str | None = None, fail_first: int = 0) -> None:
        self.record = tmp / f"requests-{id(self)}.jsonl"
        verifier = worker_mod.OidcVerifier(issuer, None) if issuer else None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), worker_mod.make_handler(verifier, str(self.record), fail_first))
        if tls:
            self.server.socket = worker_mod.self_signed_context("127.0.0.1").wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def requests(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line.strip()]

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(seen := self.requests()) >= count:
                return seen
            time.sleep(0.05)
        raise AssertionError(f"worker got {len(self.requests())} requests, expected {count}")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv(client.EMULATOR_ENV, raising=False)
    clock = ManualClock()
    with testing.run_emulator(queues=[QUEUE], clock=clock) as handle:
        client.set_emulator_host(handle.grpc_target)
        yield handle
        client.set_emulator_host(None)


def wait_until(predicate, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def later(seconds: float) -> str:
    return spec.rules.format_time(datetime.now(timezone.utc) + timedelta(seconds=seconds))


P = TaskProvider()


def create(props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    result = P.check({}, {**props, "__name": "t"})
    assert not result.failures, [(f.property, f.reason) for f in result.failures]
    created = P.create(result.inputs)
    return created.id, created.outs


def test_create_read_run_gone_delete(emu: Any, tmp_path: Path) -> None:
    worker = Worker(tmp_path, fail_first=1)
    try:
        id_, outs = create(http_props(url=worker.url + "/reindex", schedule_time=later(60)))
        assert outs["status"] == "scheduled" and outs["name"] == id_ and outs["create_time"]
        read = P.read(id_, outs).outs
        assert read["status"] == "scheduled" and read["dispatch_count"] == 0 and read["view"] == "FULL"
        assert spec.changed_fields(spec.spec_from_state(read), spec.normalize(outs)[0]) == []

        emu.clock.advance(61)  # first attempt: the worker answers 503
        worker.wait_for(1)
        read = wait_until(lambda: (r := P.read(id_, read).outs)["response_count"] >= 1 and r)
        assert read["status"] == "dispatched" and read["dispatch_count"] == 1
        assert read["last_attempt"]["response_status"]["code"] != 0

        emu.clock.advance(3600)  # the retry succeeds: the task leaves the queue
        seen = worker.wait_for(2)
        assert seen[-1]["path"] == "/reindex" and seen[-1]["headers"]["X-CloudTasks-TaskRetryCount"] == "1"
        gone = wait_until(lambda: (r := P.read(id_, read)).outs["status"] == "gone" and r)
        assert gone.id == id_ and gone.outs["dispatch_count"] == 1 and gone.outs["name"] == id_
        P.delete(id_, gone.outs)  # NOT_FOUND is success
    finally:
        worker.stop()


def test_scheduled_task_deleted_before_it_runs_is_never_dispatched(emu: Any, tmp_path: Path) -> None:
    worker = Worker(tmp_path)
    try:
        id_, outs = create(http_props(url=worker.url + "/later", schedule_time=later(30)))
        P.delete(id_, outs)
        # A sentinel due after the deleted task: once it arrives, the deleted one would have too.
        create(http_props(url=worker.url + "/sentinel", schedule_time=later(40)))
        emu.clock.advance(120)
        seen = worker.wait_for(1)
        assert [r["path"] for r in seen] == ["/sentinel"]
        assert P.read(id_, outs).outs["status"] == "gone"
    finally:
        worker.stop()


def test_app_engine_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = Worker(tmp_path)
    monkeypatch.delenv(client.EMULATOR_ENV, raising=False)
    try:
        with testing.run_emulator(queues=[QUEUE], app_engine_url=worker.url) as emu:
            client.set_emulator_host(emu.grpc_target)
            id_, outs = create({"queue": QUEUE, "app_engine_http_request": {
                "relative_uri": "/ae/work?x=1", "http_method": "PUT", "body": "payload",
                "app_engine_routing": {"service": "worker"}}})
            assert outs["app_engine_http_request"]["relative_uri"] == "/ae/work?x=1"
            seen = worker.wait_for(1)
            assert seen[0]["method"] == "PUT" and seen[0]["path"] == "/ae/work?x=1" and seen[0]["body_bytes"] == 7
            assert wait_until(lambda: P.read(id_, outs).outs["status"] == "gone")
    finally:
        client.set_emulator_host(None)
        worker.stop()


def test_oidc_token_is_received_and_verifiable(emu: Any, tmp_path: Path) -> None:
    worker = Worker(tmp_path, tls=True, issuer=emu.http_url)
    try:
        create(http_props(url=worker.url + "/secure",
                          oidc_token={"service_account_email": "worker@p.iam.gserviceaccount.com"}))
        seen = worker.wait_for(1)
        assert seen[0]["oidc"] == {"verified": True, "email": "worker@p.iam.gserviceaccount.com",
                                   "aud": worker.url + "/secure"}
    finally:
        worker.stop()


def test_already_exists_after_a_lost_reply_is_adopted(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudtasks_emulator.core.faults import FaultInjector
    monkeypatch.delenv(client.EMULATOR_ENV, raising=False)
    faults = FaultInjector()
    with testing.run_emulator(queues=[QUEUE], faults=faults) as emu:
        client.set_emulator_host(emu.grpc_target)
        try:
            # CreateTask commits, then the reply is lost (UNAVAILABLE): the client retries, gets
            # ALREADY_EXISTS for our own name, and the provider adopts the identical task.
            faults.configure_json({"rules": {"CreateTask": {"commit_then_fail": 1.0, "code": "UNAVAILABLE"}}})
            try:
                id_, outs = create(http_props(task_id="lost-reply", schedule_time=later(600)))
                assert faults.snapshot()["counters"]["CreateTask"]["commit_then_fail"] == 1
            finally:
                faults.clear()
            assert id_ == f"{QUEUE}/tasks/lost-reply" and outs["status"] == "scheduled"
            stored = client.get_task(id_)
            assert spec.api_mismatches(spec.normalize(outs)[0], stored) == []
            # A different spec under the same name is refused, not adopted.
            with pytest.raises(RuntimeError, match="already exists with a different"):
                create(http_props(task_id="lost-reply", url="https://elsewhere.example/", schedule_time=later(600)))
        finally:
            client.set_emulator_host(None)


def test_read_falls_back_to_the_basic_view_without_full_view_permission(
        emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from google.api_core import exceptions
    from google.cloud import tasks_v2

    id_, outs = create(http_props(schedule_time=later(600)))
    real_get = client.get_task
    views: list[Any] = []

    def get_without_full_view(name: str, view: Any = tasks_v2.Task.View.FULL, **kw: Any) -> Any:
        views.append(view)
        if view == tasks_v2.Task.View.FULL:
            raise exceptions.PermissionDenied("cloudtasks.tasks.fullView denied")
        return real_get(name, view, **kw)

    monkeypatch.setattr(client, "get_task", get_without_full_view)
    read = P.read(id_, outs).outs
    assert views == [tasks_v2.Task.View.FULL, tasks_v2.Task.View.BASIC]
    assert read["view"] == "BASIC" and read["status"] == "scheduled"
    # The body is missing under BASIC, which is not drift: nothing to replace.
    assert spec.changed_fields(spec.spec_from_state(read), spec.normalize(outs)[0]) == []


def test_reads_and_deletes_retry_deadline_exceeded_until_they_succeed(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudtasks_emulator.core.faults import FaultInjector
    monkeypatch.delenv(client.EMULATOR_ENV, raising=False)
    faults = FaultInjector()
    with testing.run_emulator(queues=[QUEUE], faults=faults) as emu:
        client.set_emulator_host(emu.grpc_target)
        try:
            id_, outs = create(http_props(schedule_time=later(600)))
            faults.configure_json({"seed": 3, "rules": {
                "GetTask": {"error": 0.5, "code": "DEADLINE_EXCEEDED"},
                "DeleteTask": {"error": 0.5, "code": "DEADLINE_EXCEEDED"}}})
            for _ in range(5):
                assert P.read(id_, outs).outs["status"] == "scheduled"
            P.delete(id_, outs)
            counters = faults.snapshot()["counters"]
            assert counters["GetTask"]["errors"] >= 1 and counters["DeleteTask"]["calls"] >= 1, counters
            faults.clear()
            assert P.read(id_, outs).outs["status"] == "gone"
        finally:
            client.set_emulator_host(None)
