"""Secrets stay secret: a stack (``stacks/secrets``) whose task has secret headers (Authorization,
X-Api-Key, via ``pulumi.Output.secret``) and a secret body. None of the plain texts may appear in
the file backend's files (current state, history, backups), the serialized provider
(``__provider``), the output of ``pulumi up``, the ``cloudtasks`` CLI's tables and JSON (except the
one deliberate place: ``describe --format json --view full``), or the emulator's log at DEBUG while
it dispatches the task (``tasks run``) with those headers."""
from __future__ import annotations

import base64
import io
import secrets
from datetime import datetime, timedelta, timezone

import pytest
from rel_helpers import QUEUE, EmulatorProcess, RecordingWorker, make_stack, state_resources, wait_until

from pulumi_cloudtasks import cli
from cloudtasks_emulator.testing import make_client

pytestmark = [pytest.mark.slow, pytest.mark.stack]


def _cli(*argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(list(argv), out=out, err=err) == 0, err.getvalue()
    return out.getvalue() + err.getvalue()


def _leaks(text: str | bytes, plain: dict[str, str]) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode()
    return [name for name, value in plain.items() if value.encode() in data]


def test_no_secret_in_state_provider_cli_or_emulator_logs(tmp_path, monkeypatch):
    plain = {"authorization": f"Bearer hdr-{secrets.token_hex(12)}", "api_key": f"key-{secrets.token_hex(12)}",
             "body": f"body-{secrets.token_hex(12)}"}
    worker = RecordingWorker()
    args = ["--port", "0", "--http-port", "0", "--queue", QUEUE, "--log-level", "DEBUG",
            "--app-engine-url", "http://127.0.0.1:1"]
    try:
        emu = EmulatorProcess(args, tmp_path / "emulator.log")
        try:
            schedule = (datetime.now(timezone.utc) + timedelta(days=1)).replace(microsecond=0)
            stack, backend = make_stack("secrets", tmp_path, {
                "cloudtasks:emulatorHost": emu.grpc_target, "reliability-secrets:queue": QUEUE,
                "reliability-secrets:workerUrl": worker.url,
                "reliability-secrets:scheduleTime": schedule.isoformat().replace("+00:00", "Z"),
                "reliability-secrets:authHeader": plain["authorization"],
                "reliability-secrets:apiKey": plain["api_key"], "reliability-secrets:body": plain["body"],
            }, monkeypatch, secret_keys=("reliability-secrets:authHeader", "reliability-secrets:apiKey",
                                         "reliability-secrets:body"))
            lines: list[str] = []
            result = stack.up(on_output=lines.append)
            assert result.summary.result == "succeeded"
            assert not _leaks(result.stdout + "".join(lines), plain), "pulumi up printed a secret"

            # The file backend: every file (state, history, backups), and the task really is secret there.
            files = [p for p in backend.rglob("*") if p.is_file()]
            assert files
            for path in files:
                assert not _leaks(path.read_bytes(), plain), f"plain secret in {path.relative_to(backend)}"
            assert any(b"ciphertext" in p.read_bytes() for p in files), "no encrypted value in the state"
            (task_state,) = state_resources(stack)
            provider = task_state["outputs"]["__provider"]
            assert not _leaks(base64.b64decode(provider + "=" * (-len(provider) % 4)), plain)
            name = result.outputs["name"].value

            # The task in the emulator does carry them (the checks below are not vacuous).
            task = make_client(emu.grpc_target).get_task(request={"name": name, "response_view": "FULL"})
            assert task.http_request.headers["Authorization"] == plain["authorization"]
            assert task.http_request.body == plain["body"].encode()

            # The cloudtasks CLI.
            host = ["--emulator-host", emu.grpc_target]
            outputs = {
                "list": _cli(*host, "tasks", "list", QUEUE),
                "list json": _cli(*host, "tasks", "list", QUEUE, "--format", "json"),
                "list full": _cli(*host, "tasks", "list", QUEUE, "--view", "full"),
                "describe": _cli(*host, "tasks", "describe", name),
                "describe json": _cli(*host, "tasks", "describe", name, "--format", "json"),
                "describe full": _cli(*host, "tasks", "describe", name, "--view", "full"),
            }
            assert name.rsplit("/", 1)[1] in outputs["list"]
            # The one exception, by design: `--view full --format json` is an explicit request for the
            # whole task (like gcloud's --response-view=full), for list and describe alike.
            full_json = _cli(*host, "tasks", "list", QUEUE, "--view", "full", "--format", "json")
            assert plain["body"] in full_json
            outputs["run"] = _cli(*host, "tasks", "run", name)  # dispatches now, with the headers
            for what, text in outputs.items():
                assert not _leaks(text, plain), f"`cloudtasks tasks {what}` printed {_leaks(text, plain)}"

            (delivery,) = wait_until(lambda: [d for d in worker.snapshot() if d.answered], timeout=30,
                                     message="the task reached the worker")
            assert delivery.headers.get("Authorization") == plain["authorization"]
            assert delivery.headers.get("X-Api-Key") == plain["api_key"]
            assert delivery.body == plain["body"].encode()
            wait_until(lambda: not list(make_client(emu.grpc_target).list_tasks(parent=QUEUE)), timeout=30,
                       message="the task to be recorded as done")
            stack.destroy(on_output=lambda _line: None)
        finally:
            emu.stop()
        log = emu.stderr()
        assert "dispatch" in log and "secret" in log, "the emulator logged no dispatch at DEBUG"
        assert not _leaks(log, {k: v for k, v in plain.items() if k != "api_key"}), \
            "the emulator log shows the Authorization header or the body"
        assert not _leaks(log, plain), (
            "the emulator log shows the secret X-Api-Key header value: delivery.redacted() masks only "
            "Authorization")
    finally:
        worker.stop()
