"""CreateTask validation and the defaults the service fills in."""
from __future__ import annotations

import datetime as dt

import pytest
from emu_helpers import QUEUE
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.protobuf import duration_pb2, timestamp_pb2


@pytest.fixture
def paused(client):
    client.pause_queue(name=QUEUE)
    return client


def _invalid(client, task: dict) -> str:
    with pytest.raises(exceptions.InvalidArgument) as err:
        client.create_task(parent=QUEUE, task=task)
    return err.value.message


def test_task_without_target_is_rejected(paused):
    assert "exactly one target" in _invalid(paused, {})


@pytest.mark.parametrize(("url", "expected"), [
    ("", "HttpRequest.url is required."),
    ("ftp://host/x", "HttpTarget.url must start with 'http://' or 'https://'."),
    ("http://h/" + "a" * 2100, "must be at most 2083"),
])
def test_bad_urls_are_rejected(paused, url, expected):
    assert expected in _invalid(paused, {"http_request": {"url": url}})


def test_token_needs_an_https_url(paused):
    message = _invalid(paused, {"http_request": {"url": "http://h/", "oidc_token": {"service_account_email": "a@b"}}})
    assert message.startswith("HttpRequest.url must start with 'https://'")


def test_body_is_only_allowed_for_post_put_patch(paused):
    message = _invalid(paused, {"http_request": {"url": "http://h/", "http_method": "GET", "body": b"x"}})
    assert "body" in message and "GET" in message
    message = _invalid(paused, {"app_engine_http_request": {"relative_uri": "/", "http_method": "PATCH", "body": b"x"}})
    assert "AppEngineHttpRequest.body" in message


def test_schedule_time_more_than_720h_ahead_is_rejected(paused):
    far = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=721)
    message = _invalid(paused, {"http_request": {"url": "http://h/"}, "schedule_time": far})
    assert message.endswith("Schedule time must be no more than 720h in the future.")


@pytest.mark.parametrize("seconds", [14, 1801])
def test_http_dispatch_deadline_outside_15s_to_30min_is_rejected(paused, seconds):
    message = _invalid(paused, {"http_request": {"url": "http://h/"}, "dispatch_deadline": {"seconds": seconds}})
    assert "dispatchDeadline" in message


def test_oversized_task_is_rejected(paused):
    assert _invalid(paused, {"http_request": {"url": "http://h/", "body": b"x" * (1024 * 1024 + 1)}}) == "Task size too large"


def test_reserved_headers_are_rejected(paused):
    assert "reserved" in _invalid(paused, {"http_request": {"url": "http://h/", "headers": {"X-Google-Foo": "1"}}})


def test_http_defaults_are_filled_in(paused):
    task = paused.create_task(parent=QUEUE, task={"http_request": {
        "url": "https://h/", "oauth_token": {"service_account_email": "sa@p.iam.gserviceaccount.com"},
    }})
    assert task.http_request.http_method == tasks_v2.HttpMethod.POST
    assert task.dispatch_deadline == dt.timedelta(seconds=600)
    assert task.http_request.oauth_token.scope == "https://www.googleapis.com/auth/cloud-platform"


def test_oidc_audience_is_kept_as_given(paused):
    task = paused.create_task(parent=QUEUE, task={"http_request": {
        "url": "https://h/", "oidc_token": {"service_account_email": "sa@p", "audience": "custom-aud"}}})
    assert task.http_request.oidc_token.audience == "custom-aud"


def test_schedule_time_in_the_past_becomes_now_and_create_time_has_whole_seconds(paused):
    before = dt.datetime.now(dt.timezone.utc)
    task = paused.create_task(parent=QUEUE, task={
        "http_request": {"url": "http://h/"}, "schedule_time": before - dt.timedelta(days=1)})
    assert task.schedule_time >= before - dt.timedelta(seconds=1)
    assert task.schedule_time.microsecond % 1 == 0
    assert task.create_time.microsecond == 0


def test_future_schedule_time_is_truncated_to_microseconds(paused):
    future = timestamp_pb2.Timestamp(seconds=int(dt.datetime.now().timestamp()) + 60, nanos=123456789)
    request = tasks_v2.CreateTaskRequest(parent=QUEUE)
    request._pb.task.http_request.url = "http://h/"
    request._pb.task.schedule_time.CopyFrom(future)
    task = paused.create_task(request=request)
    assert task._pb.schedule_time.nanos == 123456000


def test_dispatch_deadline_is_truncated_to_milliseconds(paused):
    request = tasks_v2.CreateTaskRequest(parent=QUEUE)
    request._pb.task.http_request.url = "http://h/"
    request._pb.task.dispatch_deadline.CopyFrom(duration_pb2.Duration(seconds=20, nanos=1_234_567))
    assert paused.create_task(request=request)._pb.dispatch_deadline.nanos == 1_000_000


def test_app_engine_task_gains_headers_and_routing_host(paused):
    task = paused.create_task(request={"parent": QUEUE, "response_view": tasks_v2.Task.View.FULL, "task": {
        "app_engine_http_request": {"relative_uri": "", "body": b"payload",
                                    "app_engine_routing": {"service": "worker", "version": "v2"}}}})
    request = task.app_engine_http_request
    assert request.relative_uri == "/"
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.headers["Content-Length"] == "7"
    assert request.headers["User-Agent"].startswith("AppEngine-Google")
    assert request.app_engine_routing.host == "v2.worker.127.0.0.1:8080"


def test_output_only_fields_in_the_request_are_ignored(paused):
    task = paused.create_task(parent=QUEUE, task={"http_request": {"url": "http://h/"}, "dispatch_count": 7,
                                                   "response_count": 3})
    assert task.dispatch_count == 0 and task.response_count == 0
