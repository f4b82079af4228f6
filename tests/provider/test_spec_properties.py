"""Property tests: any input gives a spec or failures naming a field, never an exception."""
from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import HealthCheck, given, settings, strategies as st
from pulumi.output import Unknown

from provider_helpers import QUEUE
from pulumi_cloudtasks import spec

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
KNOWN_PATHS = set(spec.SPEC_FIELDS)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=30), st.binary(max_size=20), st.just(spec.UNKNOWN_SENTINEL),
                    st.builds(Unknown), st.sampled_from(["600s", "15s", "2026-01-02T00:00:00Z", "POST", "get",
                                                         "https://x.example/a", "/rel", QUEUE, "Host"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)), max_leaves=8)
request_keys = st.sampled_from(["url", "http_method", "headers", "body", "body_base64", "oauth_token",
                                "oidc_token", "relative_uri", "app_engine_routing", "bogus"])
requests = st.dictionaries(request_keys, values, max_size=5)
props = st.fixed_dictionaries({}, optional={
    "queue": st.one_of(st.just(QUEUE), values), "task_id": values,
    "http_request": st.one_of(requests, values), "app_engine_http_request": st.one_of(requests, values),
    "schedule_time": values, "dispatch_deadline": values, "triggers": values, "extra": values,
})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(props)
def test_normalize_never_raises_and_failures_name_a_field(p):
    result, failures = spec.normalize(p, NOW)
    assert isinstance(result, dict)
    for path, reason in failures:
        assert path.split(".")[0] in KNOWN_PATHS | {"extra"}, (path, reason)
        assert reason and not reason.startswith("could not normalise"), reason


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(props)
def test_normalisation_is_idempotent(p):
    once, failures = spec.normalize(p, NOW)
    if not failures:
        again, failures_again = spec.normalize(once, NOW)
        assert failures_again == [] and again == once
        assert spec.changed_fields(once, again) == [] or spec.contains_unknowns(once)


good_requests = st.fixed_dictionaries(
    {"url": st.sampled_from(["https://x.example/a", "http://y.example/"])},
    optional={"http_method": st.sampled_from(["post", "PUT", "patch", "GET", "delete"]),
              "headers": st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True),
                                         st.text(max_size=10), max_size=3),
              "body": st.one_of(st.text(max_size=20), st.binary(max_size=20)),
              "oidc_token": st.fixed_dictionaries({"service_account_email": st.just("a@b.iam")},
                                                  optional={"audience": st.text(max_size=5)})})
good_props = st.fixed_dictionaries({"queue": st.just(QUEUE), "http_request": good_requests,
                                    "task_id": st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)}, optional={
    "schedule_time": st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 1, 30),
                                  timezones=st.just(timezone.utc)),
    "dispatch_deadline": st.floats(min_value=15, max_value=1800), "triggers": st.lists(st.integers(), max_size=3)})


@settings(max_examples=300, deadline=None)
@given(good_props)
def test_plausible_tasks_round_trip(p):
    once, failures = spec.normalize(p, NOW)
    assert all(path.split(".")[0] in KNOWN_PATHS for path, _ in failures)
    assert spec.normalize(once, NOW)[0] == once
    if not failures:
        task = spec.to_api_task(once)
        stored = spec.spec_from_api(task)
        assert stored["http_request"]["url"] == once["http_request"]["url"]
        assert spec.api_mismatches(once, task) == []
