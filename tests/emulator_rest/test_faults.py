"""Fault injection: spec parsing, seeded determinism, the admin endpoint, commit-then-fail."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests
from google.api_core import exceptions as gexc

from cloudtasks_emulator.core.errors import ApiError
from cloudtasks_emulator.core.oidc import OidcSigner
from cloudtasks_emulator.core.faults import FaultInjector, parse_json, parse_spec
from cloudtasks_emulator.http_server import HttpServer, _is_loopback
from cloudtasks_emulator.testing import make_client, run_emulator

from .fake_service import FakeService

METHODS = {"CreateTask", "GetQueue", "ListTasks"}


def outcomes(inj: FaultInjector, method: str, n: int) -> list[str]:
    out = []
    for _ in range(n):
        try:
            inj.before_call(method)
            inj.after_commit(method)
            out.append("ok")
        except ApiError as exc:
            out.append(exc.code.name)
    return out


def test_spec_parsing_merges_entries_and_overlays_star() -> None:
    cfg = parse_spec("CreateTask:error=0.2:code=UNAVAILABLE,*:latency=50ms,CreateTask:commit_then_fail=0.1,seed=7",
                     METHODS)
    assert cfg.seed == 7
    assert cfg.rules["CreateTask"].to_json() == {"error": 0.2, "code": "UNAVAILABLE", "commit_then_fail": 0.1}
    assert cfg.rules["*"].to_json() == {"latency": "50ms"}
    slept: list[float] = []
    inj = FaultInjector(cfg, sleep=slept.append)
    inj.before_call("GetQueue")
    assert slept == [0.05]  # "*" applies to every RPC
    assert parse_spec("*:latency=1.5s").rules["*"].latency == 1.5
    assert parse_spec("GetQueue:code=internal:error=1").rules["GetQueue"].code == "INTERNAL"


@pytest.mark.parametrize("spec,needle", [
    ("Nope:error=0.1", "unknown RPC"), ("CreateTask:error=2", "probability"), ("CreateTask:error=x", "probability"),
    ("CreateTask:code=NOT_FOUND", "code must be one of"), ("CreateTask:latency=fast", "latency"),
    ("CreateTask:latency=-1s", "latency"), ("CreateTask:error", "key=value"), ("CreateTask:colour=red", "unknown"),
    ("CreateTask", "no settings"), (":error=1", "method name"), ("seed=abc", "seed"),
])
def test_bad_specs_are_refused_with_a_reason(spec, needle) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_spec(spec, METHODS)


def test_json_form() -> None:
    cfg = parse_json({"seed": 3, "rules": {"CreateTask": {"error": 0.5, "code": "INTERNAL", "latency": 0.01}}}, METHODS)
    assert cfg.seed == 3 and cfg.rules["CreateTask"].latency == 0.01
    for bad in ([], {"rules": []}, {"rules": {"CreateTask": {"error": "lots"}}}, {"extra": 1},
                {"rules": {"CreateTask": 5}}, {"seed": True}):
        with pytest.raises(ValueError):
            parse_json(bad, METHODS)


def test_off_by_default() -> None:
    inj = FaultInjector()
    assert outcomes(inj, "CreateTask", 50) == ["ok"] * 50
    assert inj.snapshot() == {"enabled": False, "seed": 0, "rules": {}, "counters": {}}


def test_seeded_runs_repeat_exactly_and_seeds_differ() -> None:
    spec = "CreateTask:error=0.3:code=RESOURCE_EXHAUSTED:commit_then_fail=0.2,seed=11"
    a, b = FaultInjector.from_spec(spec), FaultInjector.from_spec(spec)
    seq = outcomes(a, "CreateTask", 300)
    assert seq == outcomes(b, "CreateTask", 300)
    assert outcomes(FaultInjector.from_spec(spec.replace("seed=11", "seed=12")), "CreateTask", 300) != seq
    # Calls to another method do not shift this method's sequence (per-RPC generators).
    c = FaultInjector.from_spec(spec + ",GetQueue:error=0.5")
    mixed = []
    for _ in range(300):
        outcomes(c, "GetQueue", 1)
        mixed += outcomes(c, "CreateTask", 1)
    assert mixed == seq
    # Rates are honoured: ~30% before, then ~20% of the rest after commit.
    errors = seq.count("RESOURCE_EXHAUSTED") / len(seq)
    assert 0.34 < errors < 0.54  # 1 - 0.7 * 0.8 = 0.44 expected overall


def test_snapshot_counts_injected_faults() -> None:
    inj = FaultInjector.from_spec("GetQueue:error=1:code=DEADLINE_EXCEEDED,ListTasks:commit_then_fail=1", sleep=lambda s: None)
    assert set(outcomes(inj, "GetQueue", 3)) == {"DEADLINE_EXCEEDED"}
    assert set(outcomes(inj, "ListTasks", 2)) == {"UNAVAILABLE"}  # default code
    snap = inj.snapshot()
    assert snap["enabled"] and snap["counters"]["GetQueue"]["errors"] == 3
    assert snap["counters"]["ListTasks"] == {"calls": 2, "errors": 0, "commit_then_fail": 2, "delayed": 0}


def test_loopback_detection() -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("127.8.9.10") and _is_loopback("::1")
    assert _is_loopback("::ffff:127.0.0.1")
    assert not _is_loopback("10.0.0.1") and not _is_loopback("::ffff:10.0.0.1") and not _is_loopback("bogus")


def test_admin_endpoint(fake_http) -> None:
    server, _ = fake_http
    url = f"{server.url}/_emulator/faults"
    assert requests.get(url).json()["enabled"] is False
    q = f"{server.url}/v2/projects/p/locations/l/queues/q"
    assert requests.get(q).status_code == 404  # the fake has no such queue: a plain answer
    snap = requests.put(url, json={"seed": 1, "rules": {"GetQueue": {"error": 1, "code": "UNAVAILABLE"}}}).json()
    assert snap["enabled"] and snap["rules"]["GetQueue"]["code"] == "UNAVAILABLE"
    r = requests.get(q)
    assert r.status_code == 503 and r.json()["error"]["status"] == "UNAVAILABLE"
    assert requests.get(url).json()["counters"]["GetQueue"]["errors"] == 1
    bad = requests.put(url, json={"rules": {"GetQueue": {"error": 3}}})
    assert bad.status_code == 400 and "probability" in bad.json()["error"]["message"]
    assert requests.put(url, data=b"{nope").status_code == 400
    assert requests.post(url, json={}).status_code == 405
    assert requests.get(url).json()["rules"]["GetQueue"]["error"] == 1  # a bad PUT changed nothing
    assert requests.delete(url).json()["enabled"] is False
    assert requests.get(q).status_code == 404


def test_admin_endpoint_refuses_non_loopback_clients(fake_http) -> None:
    server, _ = fake_http
    for verb in ("GET", "PUT", "DELETE"):
        answer = server.dispatch(verb, "/_emulator/faults", b"{}", "192.168.1.20", "")
        assert answer.status == 403 and answer.body["error"]["status"] == "PERMISSION_DENIED"


def test_admin_endpoint_without_an_injector() -> None:
    server = HttpServer(FakeService(), "127.0.0.1", 0, OidcSigner(None), None).start()
    try:
        assert requests.get(f"{server.url}/_emulator/faults").json()["available"] is False
        assert requests.put(f"{server.url}/_emulator/faults", json={}).status_code == 501
    finally:
        server.stop()


def test_commit_then_fail_leaves_the_change_committed() -> None:
    faults = FaultInjector()
    queue = "projects/f/locations/us-central1/queues/q"
    later = datetime.now(timezone.utc) + timedelta(hours=1)  # no dispatch during the test
    rest_body = {"task": {"name": f"{queue}/tasks/rest-lost", "scheduleTime": later.isoformat().replace("+00:00", "Z"),
                          "httpRequest": {"url": "http://127.0.0.1:9/"}}}
    grpc_task = {"name": f"{queue}/tasks/grpc-lost", "schedule_time": later, "http_request": {"url": "http://127.0.0.1:9/"}}
    with run_emulator(faults=faults, queues=[queue]) as emu:
        faults.configure(parse_spec("CreateTask:commit_then_fail=1:code=DEADLINE_EXCEEDED"))
        r = requests.post(f"{emu.http_url}/v2/{queue}/tasks", json=rest_body)
        assert r.status_code == 504 and r.json()["error"]["status"] == "DEADLINE_EXCEEDED"
        client = make_client(emu.grpc_target)
        with pytest.raises(gexc.DeadlineExceeded):
            client.create_task(parent=queue, task=grpc_task)
        assert requests.get(f"{emu.http_url}/_emulator/faults").json()["counters"]["CreateTask"]["commit_then_fail"] == 2
        faults.clear()
        # The callers never heard, yet both creates happened; a blind retry meets ALREADY_EXISTS.
        assert {t.name for t in client.list_tasks(parent=queue)} == {rest_body["task"]["name"], grpc_task["name"]}
        assert requests.post(f"{emu.http_url}/v2/{queue}/tasks", json=rest_body).status_code == 409
        with pytest.raises(gexc.AlreadyExists):
            client.create_task(parent=queue, task=grpc_task)


def test_before_call_errors_change_nothing() -> None:
    faults = FaultInjector()
    queue = "projects/f/locations/us-central1/queues/q2"
    with run_emulator(faults=faults, queues=[queue]) as emu:
        faults.configure_json({"rules": {"CreateTask": {"error": 1, "code": "INTERNAL"}}})
        body = {"task": {"name": f"{queue}/tasks/never", "httpRequest": {"url": "http://127.0.0.1:9/"}}}
        assert requests.post(f"{emu.http_url}/v2/{queue}/tasks", json=body).status_code == 500
        faults.clear()
        assert requests.get(f"{emu.http_url}/v2/{queue}/tasks/never").status_code == 404
        assert requests.post(f"{emu.http_url}/v2/{queue}/tasks", json=body).status_code == 200
