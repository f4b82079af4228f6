"""Real dispatch to a local worker: headers, counters, retries and backoff, rate and concurrency."""
from __future__ import annotations

import datetime as dt
import logging
import time

import jwt
import pytest
from emu_helpers import LOCATION, QUEUE, Action, Worker, task_gone, wait_until
from google.api_core import exceptions

from cloudtasks_emulator.testing import make_client, run_emulator


def _fast_retries(client, queue: str = QUEUE, **retry) -> None:
    retry_config = {"min_backoff": dt.timedelta(milliseconds=10), "max_backoff": dt.timedelta(milliseconds=50)}
    retry_config.update(retry)
    client.update_queue(queue={"name": queue, "retry_config": retry_config})


def test_http_task_is_delivered_with_cloud_tasks_headers(client, worker):
    task = client.create_task(parent=QUEUE, task={
        "name": f"{QUEUE}/tasks/hello",
        "http_request": {"url": f"{worker.url}/path?q=1", "http_method": "PUT", "body": b"payload",
                         "headers": {"X-Custom-Case": "Kept", "content-type": "text/plain"}}})
    [request] = worker.wait_for(1)
    assert (request.method, request.path, request.body) == ("PUT", "/path?q=1", b"payload")
    headers = dict(request.headers)
    assert headers["X-Custom-Case"] == "Kept" and headers["content-type"] == "text/plain"
    assert headers["User-Agent"] == "Google-Cloud-Tasks"
    assert headers["X-CloudTasks-QueueName"] == "default"
    assert headers["X-CloudTasks-TaskName"] == "hello"
    assert headers["X-CloudTasks-TaskRetryCount"] == "0"
    assert headers["X-CloudTasks-TaskExecutionCount"] == "0"
    assert float(headers["X-CloudTasks-TaskETA"]) == pytest.approx(task.schedule_time.timestamp(), abs=1e-6)
    assert "X-CloudTasks-TaskPreviousResponse" not in headers
    wait_until(lambda: task_gone(client, task.name), message="task deleted after success")


def test_recorded_response_sequence_gives_the_recorded_counters(client, worker):
    _fast_retries(client)
    worker.script = [Action(503), Action(404), Action(429), Action(500), Action(302, headers={"Location": "/x"}),
                     Action(200)]
    task = client.create_task(parent=QUEUE, task={"http_request": {"url": worker.url}})
    requests = worker.wait_for(6)
    wait_until(lambda: task_gone(client, task.name), message="task deleted after the 200")
    header = lambda name: [r.header(f"X-CloudTasks-{name}") for r in requests]  # noqa: E731
    assert header("TaskRetryCount") == ["0", "1", "2", "3", "4", "5"]
    assert header("TaskExecutionCount") == ["0", "0", "1", "2", "2", "3"]
    assert header("TaskPreviousResponse") == [None, "503", "404", "429", "500", "302"]
    assert all(r.path == "/" for r in requests)  # the 302 was not followed


def test_failed_attempt_is_recorded_on_the_task(manual_client, manual_emulator, worker):
    worker.default = Action(404)
    task = manual_client.create_task(parent=QUEUE, task={"http_request": {"url": worker.url}})
    worker.wait_for(1)
    got = wait_until(lambda: (t := manual_client.get_task(name=task.name)).last_attempt.response_status.code and t)
    assert got.dispatch_count == 1 and got.response_count == 1
    assert got.last_attempt.response_status.message == "NOT_FOUND(5): HTTP status code 404"
    assert got.first_attempt.dispatch_time == got.last_attempt.dispatch_time
    assert not got.first_attempt.response_time


def test_backoff_doubles_then_grows_linearly_up_to_max(manual_client, manual_emulator, worker):
    clock = manual_emulator.clock
    manual_client.update_queue(queue={"name": QUEUE, "retry_config": {
        "min_backoff": dt.timedelta(seconds=10), "max_backoff": dt.timedelta(seconds=300), "max_doublings": 3}})
    worker.default = Action(500)
    task = manual_client.create_task(parent=QUEUE, task={"http_request": {"url": worker.url}})
    for attempt, delay in enumerate([10, 20, 40, 80, 160, 240, 300, 300], start=1):
        worker.wait_for(attempt)
        got = wait_until(lambda: (t := manual_client.get_task(name=task.name)).response_count == attempt and t,
                         message=f"attempt {attempt} recorded")
        assert got.schedule_time.timestamp() == pytest.approx(clock.now() + delay, abs=1e-3)
        assert len(worker.requests) == attempt  # nothing early
        clock.advance(delay)


def test_task_is_deleted_after_max_attempts(manual_client, manual_emulator, worker):
    manual_client.update_queue(queue={"name": QUEUE, "retry_config": {"max_attempts": 2,
                                                                         "min_backoff": dt.timedelta(seconds=1)}})
    worker.default = Action(500)
    task = manual_client.create_task(parent=QUEUE, task={"http_request": {"url": worker.url}})
    worker.wait_for(1)
    wait_until(lambda: manual_client.get_task(name=task.name).response_count == 1)
    manual_emulator.clock.advance(1)
    worker.wait_for(2)
    wait_until(lambda: task_gone(manual_client, task.name), message="task deleted after 2 attempts")


def test_retries_continue_until_both_attempts_and_duration_are_used_up(manual_client, manual_emulator, worker):
    manual_client.update_queue(queue={"name": QUEUE, "retry_config": {
        "max_attempts": 2, "max_retry_duration": dt.timedelta(seconds=25),
        "min_backoff": dt.timedelta(seconds=10), "max_backoff": dt.timedelta(seconds=10)}})
    worker.default = Action(500)
    task = manual_client.create_task(parent=QUEUE, task={"http_request": {"url": worker.url}})
    for attempt in (1, 2, 3):  # at t=0, 10, 20: the duration is not used up yet
        worker.wait_for(attempt)
        wait_until(lambda: manual_client.get_task(name=task.name).response_count == attempt)
        manual_emulator.clock.advance(10)
    worker.wait_for(4)  # t=30: both limits used up after this one
    wait_until(lambda: task_gone(manual_client, task.name), message="task deleted")


def test_retry_after_is_honoured_for_503(manual_client, manual_emulator, worker):
    worker.script = [Action(503, headers={"Retry-After": "120"})]
    task = manual_client.create_task(parent=QUEUE, task={"http_request": {"url": worker.url}})
    worker.wait_for(1)
    got = wait_until(lambda: (t := manual_client.get_task(name=task.name)).response_count == 1 and t)
    assert got.schedule_time.timestamp() == pytest.approx(manual_emulator.clock.now() + 120, abs=1e-3)


@pytest.mark.parametrize("kind", ["reset", "garbage"])
def test_misbehaving_worker_is_a_failed_attempt(client, worker, kind):
    _fast_retries(client)
    worker.script = [Action(kind=kind)]
    task = client.create_task(parent=QUEUE, task={"http_request": {"url": worker.url}})
    requests = worker.wait_for(2)
    assert requests[1].header("X-CloudTasks-TaskRetryCount") == "1"
    assert requests[1].header("X-CloudTasks-TaskExecutionCount") == "0"
    wait_until(lambda: task_gone(client, task.name))


@pytest.mark.slow
def test_hanging_worker_times_out_at_the_dispatch_deadline(client, worker):
    _fast_retries(client)
    worker.script = [Action(kind="hang")]
    started = time.monotonic()
    client.create_task(parent=QUEUE, task={"http_request": {"url": worker.url},
                                           "dispatch_deadline": dt.timedelta(seconds=15)})
    requests = worker.wait_for(2, timeout=30)
    assert 14.5 <= requests[1].received - started < 25
    assert requests[1].header("X-CloudTasks-TaskPreviousResponse") == "504"


def test_rate_limit_spaces_dispatches_after_the_burst(client, worker):
    client.update_queue(queue={"name": QUEUE, "rate_limits": {"max_dispatches_per_second": 5}})
    client.pause_queue(name=QUEUE)
    for _ in range(10):
        client.create_task(parent=QUEUE, task={"http_request": {"url": worker.url}})
    client.resume_queue(name=QUEUE)
    requests = worker.wait_for(10, timeout=15)
    times = sorted(r.received - requests[0].received for r in requests)
    # burst of 5 at once, then one every 0.2 s
    assert times[4] < 0.5
    assert times[9] >= 0.9
    assert times[9] < 3.0


def test_max_concurrent_dispatches_is_never_exceeded(client, worker):
    client.update_queue(queue={"name": QUEUE, "rate_limits": {"max_concurrent_dispatches": 2}})
    worker.default = Action(delay=0.1)
    for _ in range(6):
        client.create_task(parent=QUEUE, task={"http_request": {"url": worker.url}})
    worker.wait_for(6)
    wait_until(lambda: not list(client.list_tasks(parent=QUEUE)), message="all delivered")
    assert worker.max_active == 2


def test_slow_tasks_are_dispatched_concurrently(client, worker):
    worker.default = Action(delay=0.2)
    client.pause_queue(name=QUEUE)
    for _ in range(20):
        client.create_task(parent=QUEUE, task={"http_request": {"url": worker.url}})
    started = time.monotonic()
    client.resume_queue(name=QUEUE)
    wait_until(lambda: not list(client.list_tasks(parent=QUEUE)), message="all delivered")
    assert time.monotonic() - started < 0.8  # sequential would take 4 s
    assert worker.max_active >= 15


def test_paused_queue_dispatches_nothing_until_resumed(client, worker):
    other = f"{LOCATION}/queues/sentinel"
    client.create_queue(parent=LOCATION, queue={"name": other})
    client.pause_queue(name=QUEUE)
    held = client.create_task(parent=QUEUE, task={"http_request": {"url": f"{worker.url}/held"}})
    client.create_task(parent=other, task={"http_request": {"url": f"{worker.url}/sentinel"}})
    worker.wait_for(1)
    assert [r.path for r in worker.requests] == ["/sentinel"]
    client.resume_queue(name=QUEUE)
    assert worker.wait_for(2)[1].path == "/held"
    wait_until(lambda: task_gone(client, held.name))


def test_run_task_on_a_paused_queue_dispatches_exactly_once(client, worker):
    client.pause_queue(name=QUEUE)
    task = client.create_task(parent=QUEUE, task={"http_request": {"url": worker.url}})
    ran = client.run_task(name=task.name)
    assert ran.dispatch_count == 1 and ran.name == task.name
    worker.wait_for(1)
    wait_until(lambda: task_gone(client, task.name), message="task deleted after success")
    with pytest.raises(exceptions.NotFound):
        client.run_task(name=task.name)
    client.resume_queue(name=QUEUE)
    sentinel = client.create_task(parent=QUEUE, task={"http_request": {"url": f"{worker.url}/sentinel"}})
    worker.wait_for(2)
    wait_until(lambda: task_gone(client, sentinel.name))
    assert [r.path for r in worker.requests] == ["/", "/sentinel"]


def test_run_task_failure_reschedules_with_backoff(manual_client, manual_emulator, worker):
    manual_client.pause_queue(name=QUEUE)
    worker.default = Action(500)
    task = manual_client.create_task(parent=QUEUE, task={"http_request": {"url": worker.url},
                                                         "schedule_time": dt.datetime.now(dt.timezone.utc)
                                                         + dt.timedelta(hours=1)})
    manual_client.run_task(name=task.name)
    worker.wait_for(1)
    got = wait_until(lambda: (t := manual_client.get_task(name=task.name)).response_count == 1 and t)
    assert got.schedule_time.timestamp() == pytest.approx(manual_emulator.clock.now() + 0.1, abs=1e-3)


def test_deleted_task_is_never_dispatched(manual_client, manual_emulator, worker):
    later = dt.datetime.fromtimestamp(manual_emulator.clock.now() + 60, dt.timezone.utc)
    doomed = manual_client.create_task(parent=QUEUE, task={"http_request": {"url": f"{worker.url}/doomed"},
                                                           "schedule_time": later})
    manual_client.delete_task(name=doomed.name)
    manual_client.create_task(parent=QUEUE, task={"http_request": {"url": f"{worker.url}/sentinel"},
                                                  "schedule_time": later})
    manual_emulator.clock.advance(120)
    worker.wait_for(1)
    assert [r.path for r in worker.requests] == ["/sentinel"]


def test_app_engine_task_is_routed_with_app_engine_headers(worker):
    with run_emulator(queues=[QUEUE], http_port=None, app_engine_url=worker.url) as emu:
        client = make_client(emu.grpc_target)
        client.create_task(parent=QUEUE, task={"name": f"{QUEUE}/tasks/ae", "app_engine_http_request": {
            "relative_uri": "/work", "body": b"x", "app_engine_routing": {"service": "svc", "version": "v1"}}})
        [request] = worker.wait_for(1)
    headers = dict(request.headers)
    assert request.path == "/work"
    assert headers["Host"] == f"v1.svc.{worker.url.split('//')[1]}"
    assert headers["X-AppEngine-QueueName"] == "default" and headers["X-AppEngine-TaskName"] == "ae"
    assert headers["X-AppEngine-TaskRetryCount"] == "0"
    assert headers["User-Agent"].startswith("AppEngine-Google")
    assert not any(k.startswith("X-CloudTasks-") for k in headers)


@pytest.fixture
def tls_worker():
    w = Worker(tls=True)
    yield w
    w.stop()


def test_oidc_token_is_a_jwt_verifiable_with_the_emulator_jwks(emulator, client, tls_worker):
    url = f"{tls_worker.url}/secure"
    client.create_task(parent=QUEUE, task={"http_request": {
        "url": url, "headers": {"Authorization": "Basic user-value"},
        "oidc_token": {"service_account_email": "invoker@p.iam.gserviceaccount.com"}}})
    [request] = tls_worker.wait_for(1)
    assert [k for k, _ in request.headers if k.lower() == "authorization"] == ["Authorization"]
    scheme, token = request.header("Authorization").split(" ", 1)
    assert scheme == "Bearer"  # the token replaces the user's Authorization header
    signer = emulator.server.oidc
    header = jwt.get_unverified_header(token)
    key = next(k for k in signer.jwks()["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"], audience=url, issuer=signer.issuer)
    assert claims["email"] == "invoker@p.iam.gserviceaccount.com"


def test_oidc_audience_is_used_when_given(client, tls_worker):
    client.create_task(parent=QUEUE, task={"http_request": {
        "url": tls_worker.url, "oidc_token": {"service_account_email": "a@p", "audience": "my-aud"}}})
    [request] = tls_worker.wait_for(1)
    token = request.header("Authorization").split(" ", 1)[1]
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "my-aud"


def test_oauth_token_is_sent_as_a_bearer_header(client, tls_worker):
    client.create_task(parent=QUEUE, task={"http_request": {
        "url": tls_worker.url, "oauth_token": {"service_account_email": "sa@p.iam.gserviceaccount.com"}}})
    [request] = tls_worker.wait_for(1)
    assert request.header("Authorization").startswith("Bearer ")


def test_dispatch_log_redacts_tokens_and_bodies(client, tls_worker, caplog):
    caplog.set_level(logging.INFO, logger="cloudtasks_emulator.dispatch")
    client.create_task(parent=QUEUE, task={"http_request": {
        "url": tls_worker.url, "body": b"top-secret-body", "oauth_token": {"service_account_email": "a@p"}}})
    [request] = tls_worker.wait_for(1)
    token = request.header("Authorization").split(" ", 1)[1]
    wait_until(lambda: "dispatch" in caplog.text)
    assert token not in caplog.text and "top-secret-body" not in caplog.text
