"""Each rule in process, through the pulumi-policy objects with the args the analyzer builds."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from pulumi_policy import EnforcementLevel
from pulumi_policy.proxy import UNKNOWN_OBJECT_VALUE, UNKNOWN_STRING_VALUE

from cloudtasks_emulator.core import rules
from pulumi_cloudtasks import spec
from pulumi_cloudtasks.policy import POLICIES, POLICY_NAMES, TASK_TYPE_TOKEN, looks_autonamed, queue_allowed
from pulumi_cloudtasks.policy import check_service_limits
from policy_helpers import SA, good_props, resource_args, secret, urn, validate, validate_stack

U = UNKNOWN_STRING_VALUE


def http(**changes):
    request = dict(good_props()["http_request"])
    request.update(changes)
    return {k: v for k, v in request.items() if v is not None}


def test_pack_lists_every_rule_with_its_level():
    levels = {p.name: p.enforcement_level for p in POLICIES}
    assert levels == {
        "cloudtasks-https-only": EnforcementLevel.MANDATORY,
        "cloudtasks-authenticated-targets": EnforcementLevel.MANDATORY,
        "cloudtasks-no-static-credentials": EnforcementLevel.MANDATORY,
        "cloudtasks-allowed-queues": EnforcementLevel.MANDATORY,
        "cloudtasks-service-limits": EnforcementLevel.MANDATORY,
        "cloudtasks-explicit-task-id": EnforcementLevel.ADVISORY,
        "cloudtasks-stack-task-count": EnforcementLevel.ADVISORY,
    }
    assert TASK_TYPE_TOKEN == "pulumi-python:dynamic/cloudtasks:Task"


@pytest.mark.parametrize("name", [n for n in POLICY_NAMES if n != "cloudtasks-stack-task-count"])
def test_good_task_passes_every_rule(name):
    assert validate(name, good_props()) == []


@pytest.mark.parametrize("name", [n for n in POLICY_NAMES if n != "cloudtasks-stack-task-count"])
def test_other_resource_types_are_ignored(name):
    bad = good_props(http_request=http(url="http://evil.example.com/", oidc_token=None,
                                       headers={"Authorization": "Bearer x"}), task_id="fixed", queue="jobs")
    config = {"allowedQueues": ["a/b/c"]} if name == "cloudtasks-allowed-queues" else None
    assert validate(name, bad, config, resource_type="pulumi-python:dynamic:Resource") == []
    assert validate(name, bad, config)  # the same props on a Task are violations


# --- https-only --------------------------------------------------------------------------------------

def test_https_only_fails_for_plain_http_and_names_resource_property_value_fix():
    props = good_props(http_request=http(url="http://worker.example.com/run?key=s3cr3t-query"))
    [message] = validate("cloudtasks-https-only", props)
    assert "'nightly'" in message and urn("nightly") in message
    assert "http_request.url = http://worker.example.com/..." in message
    assert "Fix: use an https:// URL" in message
    assert "s3cr3t-query" not in message and "/run" not in message


def test_https_only_default_allows_emulator_hosts_and_config_overrides():
    local = good_props(http_request=http(url="http://localhost:8080/run", oidc_token=None))
    assert validate("cloudtasks-https-only", local) == []
    assert validate("cloudtasks-https-only", good_props(http_request=http(url="http://127.0.0.1:9/x"))) == []
    # configured: only *.internal may use http now, localhost no longer
    config = {"allowHttpHosts": ["*.internal"]}
    assert len(validate("cloudtasks-https-only", local, config)) == 1
    internal = good_props(http_request=http(url="http://jobs.svc.internal/run"))
    assert validate("cloudtasks-https-only", internal, config) == []


def test_https_only_skips_unknown_url_and_app_engine_targets():
    assert validate("cloudtasks-https-only", good_props(http_request=http(url=U))) == []
    assert validate("cloudtasks-https-only", good_props(http_request=U)) == []
    app = good_props(http_request=None, app_engine_http_request={"relative_uri": "/run"})
    assert validate("cloudtasks-https-only", app) == []


# --- authenticated-targets ----------------------------------------------------------------------------

def test_authenticated_targets_needs_a_token():
    [message] = validate("cloudtasks-authenticated-targets", good_props(http_request=http(oidc_token=None)))
    assert "http_request" in message and "neither oidc_token nor oauth_token" in message
    assert "https://worker.example.com/..." in message and "Fix: add http_request.oidc_token" in message
    oauth = http(oidc_token=None, oauth_token={"service_account_email": SA})
    assert validate("cloudtasks-authenticated-targets", good_props(http_request=oauth)) == []


def test_authenticated_targets_exempt_prefixes_and_unknowns():
    props = good_props(http_request=http(url="https://public.example.com/hooks/a", oidc_token=None))
    assert len(validate("cloudtasks-authenticated-targets", props)) == 1
    config = {"exemptUrlPrefixes": ["https://public.example.com/hooks/"]}
    assert validate("cloudtasks-authenticated-targets", props, config) == []
    other = good_props(http_request=http(url="https://public.example.com/admin", oidc_token=None))
    assert len(validate("cloudtasks-authenticated-targets", other, config)) == 1
    # unknown URL (exemption undecidable) or an unknown token: not a violation at preview
    assert validate("cloudtasks-authenticated-targets", good_props(http_request=http(url=U, oidc_token=None))) == []
    assert validate("cloudtasks-authenticated-targets",
                    good_props(http_request=http(oidc_token=UNKNOWN_OBJECT_VALUE))) == []


# --- no-static-credentials ------------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["Authorization", "proxy-authorization", "X-Api-Key", "X-Goog-Api-Key",
                                    "X-Auth-Token", "Cookie", "X-Client-Secret"])
def test_static_credential_headers_fail_without_showing_the_value(header):
    value = "Bearer sk_live_TOPSECRET_0123456789"
    props = good_props(http_request=http(headers={"Content-Type": "text/plain", header: secret(value)}))
    [message] = validate("cloudtasks-no-static-credentials", props)
    assert f"http_request.headers[{header!r}] = <redacted>" in message
    assert "Fix: remove the header and use oidc_token" in message
    assert "TOPSECRET" not in message and "sk_live" not in message


def test_ordinary_headers_pass_and_unknown_values_of_credential_headers_still_fail():
    ok = good_props(http_request=http(headers={"Content-Type": "a/b", "X-Idempotency-Key": "k", "X-Trace": U}))
    assert validate("cloudtasks-no-static-credentials", ok) == []
    # The header's presence is the fault: known at preview even when its value is not.
    assert len(validate("cloudtasks-no-static-credentials",
                        good_props(http_request=http(headers={"Authorization": U})))) == 1
    assert validate("cloudtasks-no-static-credentials", good_props(http_request=http(headers=U))) == []


@pytest.mark.parametrize("body,what", [
    ('{"user": "a", "password": "hunter2-hunter2"}', "a field 'password'"),
    ('{"auth": {"client_secret": "abcdefabcdef"}}', "a field 'auth.client_secret'"),
    ("user=a&api_key=abcdef123456", "a field 'api_key'"),
    ("-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----", "a PEM private key"),
    ("key AKIAABCDEFGHIJKLMNOP here", "an AWS access key ID"),
])
def test_credentials_in_bodies_fail_and_are_never_shown(body, what):
    for props in (good_props(http_request=http(body=secret(body))),
                  good_props(http_request=http(body=None, body_base64=base64.b64encode(body.encode()).decode()))):
        [message] = validate("cloudtasks-no-static-credentials", props)
        assert f"the body contains {what}" in message
        assert "bytes, redacted>" in message and "Fix: send a reference" in message
        for fragment in ("hunter2", "abcdefabcdef", "abcdef123456", "MIIEvQ", "AKIAABCDEFGHIJKLMNOP"):
            assert fragment not in message


def test_ordinary_bodies_and_unknown_bodies_pass():
    for body in ('{"job": 42, "token_count": 3}', '{"password": ""}', "plain text", U):
        assert validate("cloudtasks-no-static-credentials", good_props(http_request=http(body=body))) == [], body


def test_app_engine_target_headers_are_checked_too():
    app = good_props(http_request=None, app_engine_http_request={"relative_uri": "/run",
                                                                 "headers": {"X-Api-Key": "k-123456"}})
    [message] = validate("cloudtasks-no-static-credentials", app)
    assert "app_engine_http_request.headers['X-Api-Key'] = <redacted>" in message
    assert "k-123456" not in message


# --- allowed-queues ----------------------------------------------------------------------------------------

def test_allowed_queues_passes_when_unset_and_enforces_when_configured():
    other = good_props(queue="projects/demo/locations/europe-west1/queues/adhoc")
    assert validate("cloudtasks-allowed-queues", other) == []
    config = {"allowedQueues": ["projects/demo/locations/us-central1/queues/*", "prod/*/critical-*"]}
    assert validate("cloudtasks-allowed-queues", good_props(), config) == []
    [message] = validate("cloudtasks-allowed-queues", other, config)
    assert "queue = 'projects/demo/locations/europe-west1/queues/adhoc'" in message
    assert "Fix: enqueue into an allowed queue" in message
    assert validate("cloudtasks-allowed-queues", good_props(queue=U), config) == []


def test_queue_globs_match_per_segment_and_short_form():
    assert queue_allowed("projects/prod/locations/eu/queues/critical-a", ["prod/*/critical-*"])
    assert not queue_allowed("projects/prod/locations/eu/queues/bulk", ["prod/*/critical-*"])
    assert not queue_allowed("projects/prod/locations/eu/queues/x", ["projects/*"])  # * never crosses /
    assert queue_allowed("projects/prod/locations/eu/queues/x", ["projects/*/locations/*/queues/*"])


# --- service-limits -----------------------------------------------------------------------------------------

def test_service_limits_are_the_spec_models_failures():
    far = (datetime.now(timezone.utc) + rules.MAX_SCHEDULE_AHEAD + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    props = good_props(schedule_time=far, dispatch_deadline="5s",
                       http_request=http(headers={"Host": "x", "X-Google-Foo": "y"}))
    messages = validate("cloudtasks-service-limits", props)
    expected = spec.normalize(props)[1]
    assert len(messages) == len(expected) >= 4
    for (path, reason), message in zip(expected, messages):
        assert f": {path}" in message and reason.rstrip(".") in message and "Fix:" in message
    joined = "\n".join(messages)
    assert "720h" in joined and "dispatchDeadline" in joined and "'Host'" in joined


def test_service_limits_bad_queue_and_method_body():
    props = good_props(queue="jobs", http_request=http(http_method="GET"))
    messages = validate("cloudtasks-service-limits", props)
    assert any("queue = 'jobs'" in m and "projects/<PROJECT>" in m for m in messages)
    assert any("http_request.body" in m and "only allowed for HTTP method" in m for m in messages)
    assert not any('{"job": 42}' in m for m in messages)


def test_service_limits_tighter_maxima():
    soon = (datetime.now(timezone.utc) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    props = good_props(schedule_time=soon, dispatch_deadline="900s", http_request=http(body="x" * 2000))
    assert validate("cloudtasks-service-limits", props) == []  # within the service's own limits
    config = {"maxScheduleDays": 7, "maxDispatchDeadlineSeconds": 600.0, "maxBodyBytes": 1024}
    messages = validate("cloudtasks-service-limits", props, config)
    assert len(messages) == 3
    assert any("schedule_time" in m and "maxScheduleDays (7)" in m for m in messages)
    assert any("dispatch_deadline = 900s" in m and 'at most "600s"' in m for m in messages)
    assert any("http_request.body = <2000 bytes, redacted>" in m and "maxBodyBytes (1024" in m for m in messages)
    # the HTTP default deadline (600s) counts when the task gives none
    no_deadline = good_props(dispatch_deadline=None)
    [message] = validate("cloudtasks-service-limits", no_deadline, {"maxDispatchDeadlineSeconds": 120})
    assert "600s (the default for HTTP targets)" in message


def test_service_limits_skip_unknowns():
    props = good_props(schedule_time=U, dispatch_deadline=U, http_request=http(url=U, body=U, headers=U))
    assert validate("cloudtasks-service-limits", props, {"maxScheduleDays": 1, "maxBodyBytes": 1}) == []
    assert validate("cloudtasks-service-limits", good_props(http_request=U, queue=U)) == []


def test_service_limits_callable_with_a_fixed_clock():
    messages: list[str] = []
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    props = good_props(schedule_time="2030-03-01T00:00:00Z")
    check_service_limits(resource_args(props), lambda m, u=None: messages.append(m), {}, now=now)
    assert len(messages) == 1 and "too far in the future" in messages[0]


# --- explicit-task-id ---------------------------------------------------------------------------------------

def test_explicit_task_id_is_advisory_and_suggests_autonaming():
    [message] = validate("cloudtasks-explicit-task-id", good_props(task_id="nightly-report"))
    assert "task_id = 'nightly-report'" in message
    assert "reserved" in message and "Fix: remove task_id and let the provider autoname" in message


def test_autonamed_and_unknown_task_ids_pass():
    assert validate("cloudtasks-explicit-task-id", good_props()) == []
    # what the provider's check produced for resource "nightly" (the engine strips __autonamed)
    assert validate("cloudtasks-explicit-task-id", good_props(task_id="nightly-a1b2c3d4")) == []
    assert validate("cloudtasks-explicit-task-id", good_props(task_id="nightly-a1b2c3d4"), name="other") != []
    assert validate("cloudtasks-explicit-task-id", good_props(task_id=U)) == []
    assert looks_autonamed("my-task-0123abcd", "my task") and not looks_autonamed("my-task-0123ABCD", "my task")


# --- stack-task-count ----------------------------------------------------------------------------------------

def test_stack_task_count_default_and_override():
    assert validate_stack(500, others=20) == []
    [message] = validate_stack(501)
    assert "501 Task resources" in message and "maxTasksPerStack (500)" in message and "Fix:" in message
    assert validate_stack(3, {"maxTasksPerStack": 2.0}) != []  # Struct numbers arrive as floats
    assert validate_stack(2, {"maxTasksPerStack": 2}) == []


# --- config -------------------------------------------------------------------------------------------------

def test_unknown_config_key_is_reported_by_name():
    [message] = validate("cloudtasks-https-only", good_props(), {"allowHttpHost": ["x"]})
    assert "unknown key 'allowHttpHost'" in message and "allowHttpHosts" in message
    [message] = validate_stack(1, {"maxTasks": 3})
    assert "unknown key 'maxTasks'" in message and "maxTasksPerStack" in message


def test_schemas_have_the_issue_defaults():
    schemas = {p.name: p.config_schema.properties for p in POLICIES}
    assert schemas["cloudtasks-https-only"]["allowHttpHosts"]["default"] == ["localhost", "127.0.0.1"]
    assert schemas["cloudtasks-stack-task-count"]["maxTasksPerStack"]["default"] == 500
    assert "default" not in schemas["cloudtasks-allowed-queues"]["allowedQueues"]
    assert set(schemas["cloudtasks-service-limits"]) == {"maxScheduleDays", "maxDispatchDeadlineSeconds",
                                                         "maxBodyBytes"}
    assert schemas["cloudtasks-authenticated-targets"]["exemptUrlPrefixes"]["default"] == []


def test_no_secret_reaches_any_message():
    token = "ya29.SUPERSECRETTOKENVALUE"
    props = good_props(
        task_id="fixed-id", queue="bad",
        http_request={"url": f"http://user:{token}@worker.example.com/hook/{token}?sig={token}",
                      "http_method": "GET", "headers": {"Authorization": secret(f"Bearer {token}"),
                                                         "Host": secret(token)},
                      "body": secret(f'{{"access_token": "{token}"}}')})
    configs = {"cloudtasks-service-limits": {"maxBodyBytes": 1}, "cloudtasks-allowed-queues": {"allowedQueues": ["x/y/z"]}}
    by_policy = {name: validate(name, props, configs.get(name)) for name in POLICY_NAMES
                 if name != "cloudtasks-stack-task-count"}
    assert all(by_policy.values()), by_policy  # every rule fires on this task
    assert len(by_policy["cloudtasks-service-limits"]) >= 3  # queue, Host header, body with GET
    for message in (m for messages in by_policy.values() for m in messages):
        assert "SUPERSECRET" not in message and "unknown key" not in message, message
