"""The field model: defaults, canonical forms, every validation rule, unknowns."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from cloudtasks_emulator.core import rules
from google.cloud import tasks_v2
from pulumi.output import Unknown

from pulumi_cloudtasks import spec

from provider_helpers import QUEUE, http_props

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
U = spec.UNKNOWN_SENTINEL


def failures_of(props, now=NOW):
    return dict(spec.normalize(props, now)[1])


def test_defaults_and_canonical_forms():
    s, f = spec.normalize({"queue": QUEUE, "http_request": {"url": "https://x.example/a", "http_method": "put",
                                                            "oauth_token": {"service_account_email": "a@p.iam"}},
                           "schedule_time": "2026-01-02T03:04:05.1234567+02:00"}, NOW)
    assert f == []
    assert s["http_request"]["http_method"] == "PUT"
    assert s["http_request"]["headers"] == {}
    assert s["http_request"]["oauth_token"]["scope"] == rules.DEFAULT_OAUTH_SCOPE
    assert s["dispatch_deadline"] == "600s"
    assert s["schedule_time"] == "2026-01-02T01:04:05.123456Z"
    app, f = spec.normalize({"queue": QUEUE, "app_engine_http_request": {}}, NOW)
    assert f == [] and app["app_engine_http_request"] == {"relative_uri": "/", "http_method": "POST", "headers": {}}
    assert "dispatch_deadline" not in app  # App Engine's default depends on the scaling type


@pytest.mark.parametrize("value,text", [("600s", "600s"), (900, "900s"), (15.5, "15.5s"),
                                        (timedelta(minutes=20), "1200s"), ("20.0001s", "20s")])
def test_durations(value, text):
    assert spec.normalize(http_props(dispatch_deadline=value), NOW)[0]["dispatch_deadline"] == text


def test_times_from_datetimes_and_naive_rejected():
    aware = datetime(2026, 1, 5, 12, tzinfo=timezone(timedelta(hours=-5)))
    assert spec.normalize(http_props(schedule_time=aware), NOW)[0]["schedule_time"] == "2026-01-05T17:00:00Z"
    assert "timezone-aware" in failures_of(http_props(schedule_time=datetime(2026, 1, 5)))["schedule_time"]
    assert "RFC3339" in failures_of(http_props(schedule_time="tomorrow"))["schedule_time"]


def test_bodies_text_bytes_and_base64():
    s = spec.normalize(http_props(body=b"\x00\xff"), NOW)[0]
    assert s["http_request"]["body_base64"] == base64.b64encode(b"\x00\xff").decode() and "body" not in s["http_request"]
    assert spec.to_api_task(s).http_request.body == b"\x00\xff"
    assert spec.to_api_task(spec.normalize(http_props(), NOW)[0]).http_request.body == b'{"full": true}'
    assert "base64" in failures_of(http_props(body_base64="not base64!"))["http_request.body_base64"]


def test_normalisation_is_idempotent(props=None):
    props = http_props()
    once = spec.normalize(props, NOW)[0]
    assert spec.normalize(once, NOW) == (once, [])


@pytest.mark.parametrize("props,field,words", [
    (http_props(queue="projects/p/queues/q"), "queue", "Queue name must be formatted"),
    (http_props(queue="projects/p/locations/l/queues/a_b"), "queue", "Queue ID"),
    (http_props(task_id="a b"), "task_id", "Task ID"),
    ({"queue": QUEUE}, "http_request", "exactly one target"),
    ({"queue": QUEUE, "http_request": {"url": "https://x"}, "app_engine_http_request": {}}, "http_request", "not both"),
    (http_props(url="ftp://x"), "http_request.url", "must start with 'http://' or 'https://'"),
    (http_props(url="https://x/" + "a" * 2100), "http_request.url", "2083"),
    (http_props(url="http://x", oidc_token={"service_account_email": "a@b"}), "http_request.url", "https://"),
    (http_props(oauth_token={"service_account_email": "a@b"}, oidc_token={"service_account_email": "a@b"}),
     "http_request.oidc_token", "only one"),
    (http_props(oidc_token={"audience": "x"}), "http_request.oidc_token.service_account_email", "required"),
    (http_props(http_method="GET"), "http_request.body", "only allowed"),
    (http_props(http_method="FETCH"), "http_request.http_method", "Unknown HTTP method"),
    (http_props(headers={"Host": "h"}), "http_request.headers", "computed"),
    (http_props(headers={"Content-Length": "1"}), "http_request.headers", "computed"),
    (http_props(headers={"X-Google-Foo": "1"}), "http_request.headers", "reserved"),
    (http_props(headers={"X-AppEngine-Foo": "1"}), "http_request.headers", "reserved"),
    (http_props(headers={"Big": "x" * 90000}), "http_request.headers", "less than"),
    (http_props(schedule_time="2026-03-01T00:00:00Z"), "schedule_time", "720h"),
    (http_props(dispatch_deadline="10s"), "dispatch_deadline", "between"),
    (http_props(dispatch_deadline="1801s"), "dispatch_deadline", "between"),
    ({"queue": QUEUE, "app_engine_http_request": {"dispatch_deadline": 1}}, "app_engine_http_request.dispatch_deadline", "unknown property"),
    ({"queue": QUEUE, "app_engine_http_request": {}, "dispatch_deadline": "86416s"}, "dispatch_deadline", "between"),
    ({"queue": QUEUE, "app_engine_http_request": {"relative_uri": "a"}}, "app_engine_http_request.relative_uri", "begin"),
    ({"queue": QUEUE, "app_engine_http_request": {"relative_uri": "/a b"}}, "app_engine_http_request.relative_uri", "spaces"),
    ({"queue": QUEUE, "app_engine_http_request": {"http_method": "PATCH", "body": "x"}}, "app_engine_http_request.body", "POST or PUT"),
    (http_props(body="x" * (rules.MAX_TASK_SIZE_BYTES + 10)), "http_request.body", "Task size too large"),
    (http_props(triggers="x"), "triggers", "list"),
    (http_props(queue=5), "queue", "string"),
    (http_props(colour="red"), "colour", "unknown property"),
    (http_props(headers=["a"]), "http_request.headers", "object"),
    (http_props(dispatch_deadline="-5s"), "dispatch_deadline", "duration"),
    ({"http_request": {"url": "https://x"}}, "queue", "required"),
])
def test_every_rule_names_its_property(props, field, words):
    failures = failures_of(props)
    assert field in failures, failures
    assert words in failures[field]


def test_app_engine_long_deadline_and_valid_task_pass():
    assert failures_of({"queue": QUEUE, "app_engine_http_request": {}, "dispatch_deadline": "86000s"}) == {}
    assert failures_of(http_props(task_id="ok_ID-1", schedule_time="2026-01-20T00:00:00Z")) == {}


def test_rules_are_the_shared_ones():
    # The spec uses rules.validate_task's messages verbatim (the emulator sends the same ones).
    msg = rules.http_url_error("ftp://x", False)
    assert failures_of(http_props(url="ftp://x"))["http_request.url"] == msg


@pytest.mark.parametrize("unknown", [U, Unknown()])
def test_unknowns_are_kept_and_never_validated(unknown):
    for props in (http_props(queue=unknown), http_props(url=unknown, oidc_token={"service_account_email": unknown}),
                  http_props(http_method=unknown), http_props(headers=unknown), http_props(body=unknown),
                  {"queue": QUEUE, "http_request": unknown}, http_props(schedule_time=unknown),
                  http_props(task_id=unknown), http_props(triggers=[unknown])):
        s, f = spec.normalize(props, NOW)
        assert f == [], (props, f)
        assert spec.contains_unknowns(s)
    # The known parts are still checked.
    assert "http_request.url" in failures_of(http_props(url="ftp://x", body=unknown))
    assert "schedule_time" in failures_of({"queue": QUEUE, "http_request": unknown, "schedule_time": "2027-01-01T00:00:00Z"})


def test_secret_wrappers_are_unwrapped():
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "Bearer x"}
    s, f = spec.normalize(http_props(headers={"Authorization": secret}), NOW)
    assert f == [] and s["http_request"]["headers"] == {"Authorization": "Bearer x"}


def test_outputs_and_hidden_keys_are_ignored():
    props = http_props()
    s = spec.normalize(props, NOW)[0]
    state = {**s, "status": "gone", "dispatch_count": 3, "__provider": "x", "__name": "n"}
    assert spec.normalize(state, NOW) == (s, [])


def test_api_round_trip_and_status():
    s = spec.normalize(http_props(task_id="t1", schedule_time="2026-01-02T00:00:00Z",
                                  oidc_token={"service_account_email": "w@p.iam"}), NOW)[0]
    task = spec.to_api_task(s)
    assert task.name == f"{QUEUE}/tasks/t1"
    assert spec.spec_from_api(task) == s
    assert spec.api_mismatches(s, task) == []
    assert spec.task_status(task) == "scheduled"
    task.dispatch_count = 1
    assert spec.task_status(task) == "dispatched"
    assert spec.task_status(None) == "gone"
    other = spec.to_api_task({**s, "http_request": {**s["http_request"], "url": "https://other.example/"}})
    assert spec.api_mismatches(s, other) == ["http_request.url"]


def test_outputs_are_json_safe_and_gone_keeps_counters():
    import json
    s = spec.normalize(http_props(task_id="t1"), NOW)[0]
    task = spec.to_api_task(s)
    task.dispatch_count, task.response_count = 2, 1
    task.create_time = datetime(2026, 1, 1, 0, 0, 1, tzinfo=timezone.utc)
    task.view = tasks_v2.Task.View.FULL
    task.last_attempt = tasks_v2.Attempt(dispatch_time=datetime(2026, 1, 1, 0, 1, tzinfo=timezone.utc),
                                         response_status={"code": 13, "message": "HTTP status code 502"})
    outs = spec.outputs_from_api(s, task)
    json.dumps(outs)
    assert outs["dispatch_count"] == 2 and outs["status"] == "dispatched" and outs["view"] == "FULL"
    assert outs["create_time"] == "2026-01-01T00:00:01Z"
    assert outs["last_attempt"] == {"dispatch_time": "2026-01-01T00:01:00Z",
                                    "response_status": {"code": 13, "message": "HTTP status code 502"}}
    gone = spec.outputs_from_api(s, None, previous=outs)
    assert gone["status"] == "gone" and gone["dispatch_count"] == 2 and gone["name"] == f"{QUEUE}/tasks/t1"


def test_state_spec_uses_the_input_schedule_time():
    s = spec.normalize(http_props(task_id="t1"), NOW)[0]
    task = spec.to_api_task(s)
    task.schedule_time = datetime(2026, 1, 1, tzinfo=timezone.utc)  # the service's "now"
    outs = spec.outputs_from_api(s, task)
    assert outs["schedule_time"] == "2026-01-01T00:00:00Z"
    assert spec.spec_from_state(outs) == s
    assert spec.changed_fields(spec.spec_from_state(outs), s) == []
