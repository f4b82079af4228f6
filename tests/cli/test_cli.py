"""The ``cloudtasks`` CLI against a real in-process emulator (and once through the console script)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from cloudtasks_emulator.testing import make_client, run_emulator
from pulumi_cloudtasks import cli, spec
from pulumi_cloudtasks import client as tasks_client
from pulumi_cloudtasks.cli_format import MASK

LOCATION = "projects/cli-test/locations/us-central1"
CONSOLE_SCRIPT = Path(sys.executable).with_name("cloudtasks")


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    with run_emulator() as emu:
        yield emu


@pytest.fixture
def run(emulator: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``cloudtasks --emulator-host <emulator> ARGS`` in process. The env var points nowhere, so
    every test also shows that the flag overrides it."""
    monkeypatch.setenv(tasks_client.EMULATOR_ENV, "127.0.0.1:1")

    def invoke(*argv: str) -> Result:
        capsys.readouterr()
        code = cli.main(["--emulator-host", emulator.grpc_target, *argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)
    return invoke


@pytest.fixture
def queue(emulator: Any) -> str:
    name = f"{LOCATION}/queues/q-{uuid.uuid4().hex[:10]}"
    make_client(emulator.grpc_target).create_queue(parent=LOCATION, queue={"name": name})
    return name


class Worker:
    """A local HTTP worker that records what it receives."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        worker = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with worker.arrived:
                    worker.requests.append((self.path, dict(self.headers), body))
                    worker.arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 15.0) -> list[tuple[str, dict[str, str], bytes]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.requests) >= count, timeout), "worker got no request"
            return list(self.requests)


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    w.server.shutdown()
    w.server.server_close()


def later(hours: int = 1) -> str:
    """A schedule time far enough ahead that the emulator does not dispatch on its own."""
    return (datetime.now(timezone.utc) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.1)


def create_http(run: Callable[..., Result], queue: str, task_id: str, *extra: str, url: str = "https://example.com/w") -> Result:
    result = run("tasks", "create-http-task", queue, "--id", task_id, "--url", url,
                 "--schedule-time", later(), *extra)
    assert result.code == 0, result.err
    return result


def single_error_line(result: Result) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    return lines[0]


# --- tasks ---------------------------------------------------------------------------------------

def test_created_http_task_is_listed_in_a_table_and_as_json(run: Callable[..., Result], queue: str) -> None:
    created = create_http(run, queue, "first", "--format", "json", "--body", "payload")
    record = created.json()
    assert record["name"] == f"{queue}/tasks/first"
    assert record["http_request"]["url"] == "https://example.com/w"
    assert "body" not in record["http_request"]  # bodies only in describe --view full JSON
    assert f"Created task [{queue}/tasks/first]." in created.err

    table = run("tasks", "list", queue)
    assert table.code == 0
    header, row = table.out.splitlines()
    assert header.split()[:3] == ["TASK_NAME", "TYPE", "STATUS"]
    assert row.split()[:3] == ["first", "HTTP", "scheduled"]

    listed = run("tasks", "list", queue, "--format", "json").json()
    assert [t["name"] for t in listed] == [record["name"]]
    assert listed[0]["status"] == "scheduled" and listed[0]["dispatch_count"] == 0
    assert listed[0]["schedule_time"] == record["schedule_time"]


def test_list_pages_through_the_queue_and_stops_at_the_limit(run: Callable[..., Result], queue: str) -> None:
    for i in range(5):
        create_http(run, queue, f"t{i}")
    limited = run("tasks", "list", queue, "--page-size", "1", "--limit", "3", "--format", "json")
    assert limited.code == 0, limited.err
    assert len(limited.json()) == 3
    every = run("tasks", "list", queue, "--page-size", "1", "--format", "json").json()
    assert sorted(t["task_id"] for t in every) == [f"t{i}" for i in range(5)]  # all 5 pages followed
    assert len(run("tasks", "list", queue, "--limit", "2").out.splitlines()) == 3  # header + 2 rows


def test_describe_hides_body_and_secret_headers_unless_full_json_is_asked(run: Callable[..., Result], queue: str) -> None:
    create_http(run, queue, "secret", "--header", "Authorization: Bearer s3cret", "--header", "X-Trace: abc",
                "--body", "top-secret-body")
    name = f"{queue}/tasks/secret"

    table = run("tasks", "describe", name, "--view", "full")
    assert table.code == 0, table.err
    assert "s3cret" not in table.out and "top-secret-body" not in table.out
    assert yaml.safe_load(table.out)["http_request"]["headers"] == {"Authorization": MASK, "X-Trace": "abc"}

    basic = run("tasks", "describe", name, "--format", "json").json()
    assert basic["view"] == "BASIC" and "body" not in basic["http_request"]
    assert basic["http_request"]["headers"]["Authorization"] == MASK

    full = run("tasks", "describe", name, "--view", "full", "--format", "json").json()
    assert full["view"] == "FULL"
    assert full["http_request"]["body"] == "top-secret-body"
    assert full["http_request"]["headers"]["Authorization"] == "Bearer s3cret"

    listed_table = run("tasks", "list", queue, "--view", "full").out
    assert "s3cret" not in listed_table and "top-secret-body" not in listed_table
    listed_basic = run("tasks", "list", queue, "--format", "json").out
    assert "s3cret" not in listed_basic and "top-secret-body" not in listed_basic
    # Listing with the full view as JSON is, like describe, an explicit request for everything.
    listed_full = run("tasks", "list", queue, "--view", "full", "--format", "json").json()
    assert [t["http_request"]["body"] for t in listed_full] == ["top-secret-body"]


def test_short_task_id_resolves_and_global_flags_work_before_the_subcommand(run: Callable[..., Result], queue: str) -> None:
    create_http(run, queue, "short")
    project, location, queue_id = queue.split("/")[1], queue.split("/")[3], queue.rsplit("/", 1)[1]
    result = run("--project", project, "--location", location, "--format", "json", "tasks", "describe", "short",
                 "--queue", queue_id)
    assert result.code == 0, result.err
    assert result.json()["name"] == f"{queue}/tasks/short"


def test_run_dispatches_the_task_to_the_worker_now(run: Callable[..., Result], queue: str, worker: Worker) -> None:
    create_http(run, queue, "now", "--body", "hello", "--header", "Content-Type: text/plain",
                url=f"{worker.url}/jobs")
    result = run("tasks", "run", f"{queue}/tasks/now", "--format", "json")
    assert result.code == 0, result.err
    path, headers, body = worker.wait_for(1)[0]
    assert (path, body) == ("/jobs", b"hello")
    assert headers.get("X-CloudTasks-TaskName") == "now"
    # Acknowledged with 200, the task leaves the queue.
    eventually(lambda: run("tasks", "describe", f"{queue}/tasks/now").code == 1)


def test_deleted_task_is_not_found_afterwards(run: Callable[..., Result], queue: str) -> None:
    create_http(run, queue, "doomed")
    name = f"{queue}/tasks/doomed"
    deleted = run("tasks", "delete", name)
    assert deleted.code == 0 and f"Deleted task [{name}]." in deleted.err

    gone = run("tasks", "describe", name)
    assert gone.code == 1 and gone.out == ""
    assert single_error_line(gone).startswith("error: NOT_FOUND: ")


@pytest.mark.parametrize("flags, field", [
    (["--url", "ftp://x"], "http_request.url"),
    (["--url", "https://e.com", "--schedule-time", "2999-01-01T00:00:00Z"], "schedule_time"),
    (["--url", "https://e.com", "--id", "no spaces"], "task_id"),
    (["--url", "https://e.com", "--header", "Host: evil"], "http_request.headers"),
    (["--url", "https://e.com", "--method", "GET", "--body", "x"], "http_request.body"),
    (["--url", "https://e.com", "--dispatch-deadline", "5s"], "dispatch_deadline"),
])
def test_invalid_task_fails_naming_the_field_before_any_api_call(
        run: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, flags: list[str], field: str) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(tasks_client, "get_client", lambda *a: calls.append(a))
    result = run("tasks", "create-http-task", f"{LOCATION}/queues/q", *flags)
    assert result.code == 1 and result.out == ""
    assert single_error_line(result).startswith(f"error: {field}")
    assert calls == []


def test_invalid_url_message_is_the_providers(run: Callable[..., Result]) -> None:
    queue = f"{LOCATION}/queues/q"
    _, failures = spec.normalize({"queue": queue, "http_request": {"url": "ftp://x"}})
    result = run("tasks", "create-http-task", queue, "--url", "ftp://x")
    assert single_error_line(result) == f"error: {failures[0][0]}: {failures[0][1]}"


@pytest.mark.parametrize("argv", [
    ["tasks", "create-http-task", f"{LOCATION}/queues/q"],  # no --url
    ["tasks", "create-http-task", f"{LOCATION}/queues/q", "--url", "https://e.com", "--header", "nocolon"],
    ["tasks", "create-http-task", f"{LOCATION}/queues/q", "--url", "https://e.com", "--body", "a", "--body-file", "f"],
    ["tasks", "create-http-task", f"{LOCATION}/queues/q", "--url", "https://e.com", "--oidc-token-audience", "a"],
    ["tasks", "list", "just-an-id"],  # a short queue ID needs --project and --location
    ["tasks", "list", f"{LOCATION}/queues/q", "--page-size", "0"],
    ["tasks", "create-app-engine-task", f"{LOCATION}/queues/q", "--routing", "zone=x"],
])
def test_usage_errors_exit_2_without_a_traceback(run: Callable[..., Result], argv: list[str]) -> None:
    result = run(*argv)
    assert result.code == 2 and "Traceback" not in result.err and result.out == ""


def test_unreadable_body_file_is_one_error_line(run: Callable[..., Result], tmp_path: Path) -> None:
    result = run("tasks", "create-http-task", f"{LOCATION}/queues/q", "--url", "https://e.com",
                 "--body-file", str(tmp_path / "missing"))
    assert result.code == 1
    assert single_error_line(result).startswith("error: --body-file: ")


def test_body_file_becomes_the_task_body(run: Callable[..., Result], queue: str, tmp_path: Path) -> None:
    (tmp_path / "body.json").write_text('{"full": true}')
    create_http(run, queue, "fromfile", "--body-file", str(tmp_path / "body.json"))
    full = run("tasks", "describe", f"{queue}/tasks/fromfile", "--view", "full", "--format", "json").json()
    assert full["http_request"]["body"] == '{"full": true}'


def test_app_engine_task_is_created_with_routing(run: Callable[..., Result], queue: str) -> None:
    result = run("tasks", "create-app-engine-task", queue, "--id", "ae", "--relative-uri", "/work?x=1",
                 "--method", "put", "--body", "b", "--routing", "service=worker,version=v1",
                 "--schedule-time", later(), "--dispatch-deadline", "120", "--format", "json")
    assert result.code == 0, result.err
    request = result.json()["app_engine_http_request"]
    assert request["relative_uri"] == "/work?x=1" and request["http_method"] == "PUT"
    assert request["app_engine_routing"] == {"service": "worker", "version": "v1"}
    assert result.json()["dispatch_deadline"] == "120s"
    row = run("tasks", "list", queue).out.splitlines()[1].split()
    assert row[:2] == ["ae", "APP_ENGINE"]


def test_task_without_id_gets_one_from_the_service(run: Callable[..., Result], queue: str) -> None:
    result = run("tasks", "create-http-task", queue, "--url", "https://e.com", "--schedule-time", later(),
                 "--format", "json")
    assert result.code == 0, result.err
    assert result.json()["name"].startswith(f"{queue}/tasks/") and result.json()["task_id"]


# --- queues --------------------------------------------------------------------------------------

def test_queue_lifecycle_create_pause_resume_purge_delete(run: Callable[..., Result]) -> None:
    name = f"{LOCATION}/queues/life-{uuid.uuid4().hex[:8]}"
    created = run("queues", "create", name, "--max-dispatches-per-second", "5", "--max-concurrent-dispatches", "2",
                  "--max-attempts", "3", "--min-backoff", "1s", "--max-backoff", "30", "--format", "json")
    assert created.code == 0, created.err
    record = created.json()
    assert record["rate_limits"]["max_dispatches_per_second"] == 5
    assert record["rate_limits"]["max_concurrent_dispatches"] == 2
    assert record["retry_config"]["max_attempts"] == 3
    assert (record["retry_config"]["min_backoff"], record["retry_config"]["max_backoff"]) == ("1s", "30s")

    paused = run("queues", "pause", name, "--format", "json")
    assert paused.code == 0 and paused.json()["state"] == "PAUSED"
    assert f"Paused queue [{name}]." in paused.err
    assert name in [q["name"] for q in run("queues", "list", LOCATION, "--filter", "state: PAUSED", "--format", "json").json()]
    assert "PAUSED" in run("queues", "describe", name).out
    assert run("queues", "resume", name, "--format", "json").json()["state"] == "RUNNING"

    for i in range(2):
        create_http(run, name, f"p{i}")
    assert run("queues", "purge", name).code == 0
    eventually(lambda: run("tasks", "list", name, "--format", "json").json() == [])

    table = run("queues", "list", LOCATION).out
    assert table.splitlines()[0].split()[:2] == ["QUEUE_NAME", "STATE"]
    assert name.rsplit("/", 1)[1] in table

    assert run("queues", "delete", name).code == 0
    gone = run("queues", "describe", name)
    assert gone.code == 1 and single_error_line(gone).startswith("error: NOT_FOUND: ")


def test_invalid_queue_name_is_rejected_before_any_call(run: Callable[..., Result]) -> None:
    result = run("queues", "create", f"{LOCATION}/queues/bad_name!")
    assert result.code == 1 and single_error_line(result).startswith("error: queue: ")


# --- the installed console script ----------------------------------------------------------------

def test_console_script_creates_lists_deletes_and_reports_not_found(emulator: Any, queue: str) -> None:
    env = {**os.environ, tasks_client.EMULATOR_ENV: emulator.grpc_target}

    def script(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CONSOLE_SCRIPT), *argv], env=env, capture_output=True, text=True, timeout=60)

    created = script("tasks", "create-http-task", queue, "--id", "viascript", "--url", "https://e.com",
                     "--schedule-time", later(), "--format", "json")
    assert created.returncode == 0, created.stderr
    name = json.loads(created.stdout)["name"]
    assert [t["name"] for t in json.loads(script("tasks", "list", queue, "--format", "json").stdout)] == [name]
    assert script("tasks", "delete", name).returncode == 0

    gone = script("tasks", "describe", name)
    assert gone.returncode == 1 and "Traceback" not in gone.stderr
    errors = [line for line in gone.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: NOT_FOUND: ")
