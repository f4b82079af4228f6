"""The REST surface: the unmodified REST client against the real emulator, and raw HTTP for errors."""
from __future__ import annotations

import json
import logging
import socket
import time
from datetime import datetime, timedelta, timezone

import grpc
import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports.rest_base import _BaseCloudTasksRestTransport
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudtasks_emulator.core.errors import ApiError
from cloudtasks_emulator.core.methods import METHODS
from cloudtasks_emulator.rest_api import HTTP_RULES, HTTP_STATUS

Q = "projects/p/locations/us-central1/queues/q1"


def rest_client(url: str) -> tasks_v2.CloudTasksClient:
    return tasks_v2.CloudTasksClient(transport="rest", credentials=AnonymousCredentials(),
                                     client_options={"api_endpoint": url})


def test_routes_are_the_client_librarys_http_rules() -> None:
    ours = {rpc: (verb, uri, body) for rpc, verb, uri, body in HTTP_RULES}
    assert set(METHODS) | {"GetLocation", "ListLocations"} == set(ours)
    for rpc, (verb, uri, body) in ours.items():
        (opt,) = getattr(_BaseCloudTasksRestTransport, f"_Base{rpc}")._get_http_options()
        assert (opt["method"].upper(), opt["uri"], opt.get("body")) == (verb, uri, body), rpc


# --- the real emulator through the unmodified client ---------------------------------------------

def test_every_rpc_through_the_rest_client(emulator, worker, queue_parent) -> None:
    c = rest_client(emulator.http_url)
    qa, qb = f"{queue_parent}/queues/a-queue", f"{queue_parent}/queues/b-queue"
    created = c.create_queue(parent=queue_parent, queue={"name": qa, "retry_config": {"max_attempts": 7}})
    assert created.name == qa and created.state == tasks_v2.Queue.State.RUNNING
    c.create_queue(parent=queue_parent, queue={"name": qb})
    assert c.get_queue(name=qa).retry_config.max_attempts == 7
    page = c.list_queues(request={"parent": queue_parent, "page_size": 1})
    assert [q.name for q in page] == [qa, qb]  # the pager follows next_page_token

    updated = c.update_queue(queue={"name": qa, "rate_limits": {"max_dispatches_per_second": 5}},
                             update_mask={"paths": ["rate_limits.max_dispatches_per_second"]})
    assert updated.rate_limits.max_dispatches_per_second == 5 and updated.retry_config.max_attempts == 7
    assert c.pause_queue(name=qb).state == tasks_v2.Queue.State.PAUSED
    assert [q.name for q in c.list_queues(request={"parent": queue_parent, "filter": "state: PAUSED"})] == [qb]
    assert c.resume_queue(name=qb).state == tasks_v2.Queue.State.RUNNING
    assert c.purge_queue(name=qb).purge_time.timestamp() > 0

    policy = c.set_iam_policy(request={"resource": qa, "policy": {"bindings": [
        {"role": "roles/cloudtasks.enqueuer", "members": ["user:a@example.com"]}]}})
    assert policy.bindings[0].role == "roles/cloudtasks.enqueuer"
    assert c.get_iam_policy(request={"resource": qa}).bindings[0].members == ["user:a@example.com"]
    perms = c.test_iam_permissions(request={"resource": qa, "permissions": ["cloudtasks.tasks.create"]})
    assert list(perms.permissions) == ["cloudtasks.tasks.create"]

    later = datetime.now(timezone.utc) + timedelta(hours=1)
    task = c.create_task(request={"parent": qa, "response_view": tasks_v2.Task.View.FULL, "task": {
        "name": f"{qa}/tasks/rest-1", "schedule_time": later, "dispatch_deadline": timedelta(seconds=60),
        "http_request": {"url": worker.url, "body": b"\x00hello\xff", "headers": {"X-Custom": "v"}}}})
    assert task.http_request.body == b"\x00hello\xff" and task.view == tasks_v2.Task.View.FULL
    assert task.dispatch_deadline == timedelta(seconds=60)
    basic = c.get_task(name=task.name)
    assert basic.view == tasks_v2.Task.View.BASIC and basic.http_request.body == b""
    assert c.get_task(request={"name": task.name, "response_view": tasks_v2.Task.View.FULL}).http_request.body
    other = c.create_task(parent=qa, task={"http_request": {"url": worker.url}, "schedule_time": later})
    assert sorted(t.name for t in c.list_tasks(parent=qa)) == sorted([task.name, other.name])

    ran = c.run_task(name=task.name)
    assert ran.name == task.name
    deadline = time.time() + 10
    while not worker.requests and time.time() < deadline:
        time.sleep(0.05)
    assert worker.requests and worker.requests[0]["body"] == b"\x00hello\xff"
    while time.time() < deadline:
        try:
            c.get_task(name=task.name)
            time.sleep(0.05)
        except gexc.NotFound:
            break
    else:
        pytest.fail("a task that ran successfully is still there")

    c.delete_task(name=other.name)
    with pytest.raises(gexc.NotFound):
        c.delete_task(name=other.name)
    c.delete_queue(name=qb)
    with pytest.raises(gexc.NotFound):
        c.get_queue(name=qb)

    project = queue_parent.split("/locations/")[0]
    locations = c.list_locations(request={"name": project}).locations
    assert "us-central1" in [loc.location_id for loc in locations]
    assert c.get_location(request={"name": queue_parent}).location_id == "us-central1"


def test_real_errors_and_enum_encoding(emulator, queue_parent) -> None:
    base = f"{emulator.http_url}/v2"
    name = f"{queue_parent}/queues/enums"
    r = requests.post(f"{base}/{queue_parent}/queues", json={"name": name})
    assert r.status_code == 200 and r.json()["state"] == "RUNNING"
    assert requests.get(f"{base}/{name}", params={"$alt": "json;enum-encoding=int"}).json()["state"] == 1
    dup = requests.post(f"{base}/{queue_parent}/queues", json={"name": name})
    assert dup.status_code == 409 and dup.json()["error"]["status"] == "ALREADY_EXISTS"
    missing = requests.get(f"{base}/{queue_parent}/queues/nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == {"code": 404, "message": missing.json()["error"]["message"], "status": "NOT_FOUND"}
    bad = requests.post(f"{base}/{queue_parent}/queues", json={"name": f"{queue_parent}/queues/bad_id"})
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    no_target = requests.post(f"{base}/{name}/tasks", json={"task": {}})
    assert no_target.status_code == 400
    deleted = requests.delete(f"{base}/{name}")
    assert deleted.status_code == 200 and deleted.json() == {}


def test_real_rest_client_maps_errors(emulator, queue_parent) -> None:
    c = rest_client(emulator.http_url)
    with pytest.raises(gexc.NotFound):
        c.get_queue(name=f"{queue_parent}/queues/missing")
    with pytest.raises(gexc.BadRequest):  # api-core maps REST errors by HTTP status, as with Google
        c.create_queue(parent=queue_parent, queue={"name": f"{queue_parent}/queues/under_score"})


# --- the adapter alone, over a fake service --------------------------------------------------------

@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK])
def test_every_grpc_code_maps_to_http(fake_http, code) -> None:
    server, service = fake_http
    service.raise_next = ApiError(code, f"boom {code.name}")
    r = requests.get(f"{server.url}/v2/{Q}")
    expected = HTTP_STATUS.get(code, 500)
    assert r.status_code == expected
    assert r.json() == {"error": {"code": expected, "message": f"boom {code.name}", "status": code.name}}


def test_canonical_mapping_table() -> None:
    s = grpc.StatusCode
    assert {c: HTTP_STATUS.get(c, 500) for c in s if c is not s.OK} == {
        s.CANCELLED: 499, s.UNKNOWN: 500, s.INVALID_ARGUMENT: 400, s.DEADLINE_EXCEEDED: 504, s.NOT_FOUND: 404,
        s.ALREADY_EXISTS: 409, s.PERMISSION_DENIED: 403, s.RESOURCE_EXHAUSTED: 429, s.FAILED_PRECONDITION: 400,
        s.ABORTED: 409, s.OUT_OF_RANGE: 400, s.UNIMPLEMENTED: 501, s.INTERNAL: 500, s.UNAVAILABLE: 503,
        s.DATA_LOSS: 500, s.UNAUTHENTICATED: 401}


def _still_serving(url: str) -> None:
    r = requests.get(f"{url}/v2/projects/p/locations", timeout=5)
    assert r.status_code == 200 and r.json()["locations"]


BAD_BODIES = [
    (b"{not json", "Invalid JSON payload"),
    (b"\xff\xfe\x00garbage", "UTF-8"),
    (b"[1, 2]", "Expected an object"),
    (b'{"task": {"foo": 1}}', 'Unknown name "foo" at \'task\''),
    (b'{"task": []}', "'task'"),
    (b'{"task": {"httpRequest": {"url": 5}}}', "task.http_request.url"),
    (b'{"task": {"httpRequest": {"httpMethod": "FETCH"}}}', "task.http_request.http_method"),
    (b'{"task": {"httpRequest": {"httpMethod": 99}}}', "task.http_request.http_method"),
    (b'{"task": {"httpRequest": {"body": "!!not base64!!"}}}', "task.http_request.body"),
    (b'{"task": {"httpRequest": {"headers": {"a": 1}}}}', "task.http_request.headers"),
    (b'{"task": {"scheduleTime": "yesterday"}}', "scheduleTime"),
    (b'{"task": {"dispatchDeadline": 10}}', "task.dispatch_deadline"),
    (b'{"responseView": 7}', "response_view"),
    (b'{"task": {"dispatchCount": 99999999999999}}', "dispatchCount"),
    (b'{"task": {"name": true}}', "task.name"),
    (b"[" * 100000, "Invalid JSON payload"),
]


@pytest.mark.parametrize("body,needle", BAD_BODIES)
def test_bad_bodies_are_400_naming_the_field(fake_http, body, needle) -> None:
    server, service = fake_http
    r = requests.post(f"{server.url}/v2/{Q}/tasks", data=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and needle in err["message"], err["message"]
    assert not service.calls  # nothing reached the service
    _still_serving(server.url)


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/nope", 404), ("GET", "/v2/projects/p/locations/l/queues/q/tasks/t/extra", 404),
    ("GET", "/v1/" + Q, 404), ("PUT", "/v2/" + Q, 405), ("POST", "/v2/" + Q, 405),
    ("DELETE", f"/v2/{Q}/tasks", 405), ("OPTIONS", f"/v2/{Q}", 405),
])
def test_unknown_paths_and_verbs(fake_http, method, path, status) -> None:
    server, _ = fake_http
    r = requests.request(method, server.url + path)
    assert r.status_code == status and r.json()["error"]["code"] == status
    if status == 405:
        assert "GET" in r.headers["Allow"] or "POST" in r.headers["Allow"]
    _still_serving(server.url)


def test_query_parameters_bind_to_the_request(fake_http) -> None:
    server, service = fake_http
    r = requests.get(f"{server.url}/v2/{Q}/tasks", params={"pageSize": "5", "pageToken": "abc", "responseView": "FULL"})
    assert r.status_code == 200
    assert service.calls[-1][1].page_size == 5 and service.calls[-1][1].page_token == "abc"
    assert service.calls[-1][1].response_view == 2
    requests.get(f"{server.url}/v2/{Q}/tasks/t", params={"response_view": "2", "$alt": "json;enum-encoding=int"})
    assert service.calls[-1][1].response_view == 2 and service.calls[-1][1].name == f"{Q}/tasks/t"
    for params, needle in [({"pageSize": "many"}, "page_size"), ({"bogus": "1"}, '"bogus"'),
                           ({"responseView": "HUGE"}, "response_view"), ({"pageSize": ["1", "2"]}, "pageSize")]:
        bad = requests.get(f"{server.url}/v2/{Q}/tasks", params=params)
        assert bad.status_code == 400 and needle in bad.json()["error"]["message"], bad.text


def test_update_mask_and_path_wins_over_body(fake_http) -> None:
    server, service = fake_http
    r = requests.patch(f"{server.url}/v2/{Q}", params={"updateMask": "rateLimits.maxDispatchesPerSecond"},
                       json={"name": "projects/x/locations/y/queues/other", "rateLimits": {"maxDispatchesPerSecond": 3}})
    assert r.status_code == 200
    req = service.calls[-1][1]
    assert req.queue.name == Q and list(req.update_mask.paths) == ["rate_limits.max_dispatches_per_second"]


def test_answers_are_proto3_json(fake_http) -> None:
    server, _ = fake_http
    requests.post(f"{server.url}/v2/projects/p/locations/us-central1/queues", json={"name": Q})
    r = requests.post(f"{server.url}/v2/{Q}/tasks", json={"responseView": "FULL", "task": {
        "scheduleTime": "2030-01-02T03:04:05.123456Z", "dispatchDeadline": "600s",
        "httpRequest": {"url": "https://x.example/", "httpMethod": "PUT", "body": "AAEC"}}})
    t = r.json()
    assert t["scheduleTime"] == "2030-01-02T03:04:05.123456Z" and t["dispatchDeadline"] == "600s"
    assert t["httpRequest"]["body"] == "AAEC" and t["httpRequest"]["httpMethod"] == "PUT" and t["view"] == "FULL"
    as_int = requests.get(f"{server.url}/v2/{t['name']}", params={"$alt": "json;enum-encoding=int"}).json()
    assert as_int["httpRequest"]["httpMethod"] == 4 and as_int["view"] == 2
    assert requests.delete(f"{server.url}/v2/{t['name']}").json() == {}
    policy = requests.post(f"{server.url}/v2/{Q}:getIamPolicy", json={}).json()
    assert policy == {"version": 1, "etag": "AAE="}


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
        return b"".join(chunks)


def test_huge_body_is_413_without_reading_it(fake_http) -> None:
    server, _ = fake_http
    answer = _raw(server.port, (f"POST /v2/{Q}/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: {40 * 1024 * 1024}\r\n"
                                "Content-Type: application/json\r\n\r\n{\"task\":").encode())
    assert answer.startswith(b"HTTP/1.1 413") and b'"status": "INVALID_ARGUMENT"' in answer
    _still_serving(server.url)


@pytest.mark.parametrize("data", [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # a TLS hello
    b"GET /v2/" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n",
    b"POST /v2/x HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
    b"POST /v2/x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",  # then the client goes away
    b"POST /v2/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"\r\n\r\n\r\n",
])
def test_garbage_on_the_wire_never_stops_the_server(fake_http, data) -> None:
    server, _ = fake_http
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            s.recv(65536)
        except OSError:  # the server may refuse and close before all of it is sent (reset, not connected)
            pass
    _still_serving(server.url)


def test_a_service_crash_is_a_500_not_a_dead_server(fake_http) -> None:
    server, service = fake_http
    service.raise_next = RuntimeError("bug")
    r = requests.get(f"{server.url}/v2/{Q}")
    assert r.status_code == 500 and r.json()["error"]["status"] == "INTERNAL"
    _still_serving(server.url)


def test_logs_never_carry_secrets(fake_http, caplog) -> None:
    server, _ = fake_http
    caplog.set_level(logging.DEBUG)
    requests.post(f"{server.url}/v2/{Q}/tasks?access_token=QUERYSECRET",
                  headers={"Authorization": "Bearer HEADERSECRET"},
                  json={"task": {"httpRequest": {"url": "https://x/", "body": "Qk9EWVNFQ1JFVA=="},
                                 "secret": "BODYSECRET"}})
    requests.get(f"{server.url}/v2/bogus", headers={"Authorization": "Bearer HEADERSECRET"})
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("cloudtasks_emulator"))
    assert "/v2/" in text  # requests are logged...
    for secret in ("QUERYSECRET", "BODYSECRET", "Qk9EWVNFQ1JFVA", "HEADERSECRET", "Bearer"):
        assert secret not in text  # ...but never their credentials or bodies


def test_status_page(fake_http) -> None:
    server, _ = fake_http
    page = requests.get(f"{server.url}/_emulator/status")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    doc = requests.get(f"{server.url}/_emulator/status", params={"format": "json"}).json()
    assert doc["issuer"] == server.url and doc["queues"] == []


def test_status_page_of_the_real_emulator(emulator, queue_parent) -> None:
    base = emulator.http_url
    name = f"{queue_parent}/queues/status"
    requests.post(f"{base}/v2/{queue_parent}/queues", json={"name": name}).raise_for_status()
    requests.post(f"{base}/v2/{name}/tasks", json={"task": {
        "httpRequest": {"url": "http://127.0.0.1:9/"}, "scheduleTime": "2099-01-01T00:00:00Z"}})
    doc = requests.get(f"{base}/_emulator/status", headers={"Accept": "application/json"}).json()
    (entry,) = [q for q in doc["queues"] if q["name"] == name]
    assert entry["state"] == "RUNNING" and entry["tasks"] in (0, 1)  # 1 unless the 30-day rule refused it


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["task", "name", "httpRequest", "url", "body", "headers", "responseView", "view",
                         "scheduleTime", "dispatchDeadline", "appEngineHttpRequest", "x"]), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=JSONISH)
def test_random_json_gets_a_proper_answer(fake_http, doc) -> None:
    server, _ = fake_http
    r = requests.post(f"{server.url}/v2/{Q}/tasks", data=json.dumps(doc))
    assert r.status_code in (200, 400, 404, 409)
    if r.status_code != 200:
        assert set(r.json()["error"]) == {"code", "message", "status"}


FUZZ_Q = "projects/fuzz/locations/us-central1/queues/fuzz"
FUZZ_ROUTES = [("POST", f"/v2/{FUZZ_Q}/tasks"), ("POST", "/v2/projects/fuzz/locations/us-central1/queues"),
               ("PATCH", f"/v2/{FUZZ_Q}"), ("POST", f"/v2/{FUZZ_Q}:setIamPolicy"), ("POST", f"/v2/{FUZZ_Q}:pause"),
               ("POST", f"/v2/{FUZZ_Q}/tasks/t1:run"), ("GET", f"/v2/{FUZZ_Q}/tasks")]


@settings(max_examples=120, deadline=None)
@given(route=st.sampled_from(FUZZ_ROUTES), doc=JSONISH | st.binary(max_size=64).map(lambda b: b.hex()),
       raw=st.booleans(), junk=st.binary(max_size=40),
       query=st.dictionaries(st.sampled_from(["pageSize", "updateMask", "responseView", "filter", "x"]),
                             st.text(max_size=10), max_size=2))
def test_real_emulator_answers_random_requests_properly(emulator, route, doc, raw, junk, query) -> None:
    verb, path = route
    data = junk if raw else json.dumps(doc).encode()
    r = requests.request(verb, emulator.http_url + path, data=data, params=query, timeout=10)
    assert r.status_code in (200, 400, 404, 409, 429), r.text
    if r.status_code != 200:
        err = r.json()["error"]
        assert err["code"] == r.status_code and err["status"] and err["message"]
    _still_serving(emulator.http_url)


@pytest.mark.parametrize("request_line,status", [
    (b"FROB /v2/x HTTP/1.1", 501), (b"GET /v2/" + b"a" * 70000 + b" HTTP/1.1", 414), (b"GET /v2/x HTTP/1.1 extra", 400), (b"GET /v2/x HTTP/7.0", 505),
])
def test_protocol_errors_get_json_bodies(fake_http, request_line, status) -> None:
    server, _ = fake_http
    answer = _raw(server.port, request_line + b"\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and int(head.split()[1]) == status
    assert json.loads(body)["error"]["code"] == status
    _still_serving(server.url)
