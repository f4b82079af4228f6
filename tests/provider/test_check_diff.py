"""TaskProvider.check and diff as pure functions (no service)."""
from __future__ import annotations

import re

from cloudtasks_emulator.core import rules
from pulumi.output import Unknown

from provider_helpers import QUEUE, http_props
from pulumi_cloudtasks import spec
from pulumi_cloudtasks.provider import TaskProvider, autoname

P = TaskProvider()


def check(olds, news):
    result = P.check(olds, news)
    return result.inputs, {f.property: f.reason for f in result.failures}


def state_after_create(inputs):
    """What create stores: the spec outputs as the service would answer (no service needed here)."""
    s = spec.normalize(inputs)[0]
    outs = spec.outputs_from_api(s, spec.to_api_task(s))
    outs.update({k: inputs[k] for k in (spec.NAME_KEY, spec.AUTONAMED_KEY) if k in inputs})
    return outs


def test_autoname_shape():
    name = autoname("my.task name")
    assert re.fullmatch(r"my-task-name-[a-z0-9]{8}", name)
    assert rules.task_id_error(name) is None
    assert rules.task_id_error(autoname("x" * 600)) is None and len(autoname("x" * 600)) == 500


def test_autonaming_is_kept_from_olds_and_fresh_on_replacement():
    news = {**http_props(), "__name": "reindex"}
    first, failures = check({}, news)
    assert failures == {}
    assert first["task_id"].startswith("reindex-") and first[spec.AUTONAMED_KEY] is True
    again, _ = check(first, news)
    assert again["task_id"] == first["task_id"]
    changed, _ = check(first, {**http_props(url="https://other.example/"), "__name": "reindex"})
    assert changed["task_id"] != first["task_id"] and changed["task_id"].startswith("reindex-")


def test_explicit_task_id_change_needing_replacement_fails_with_the_fix():
    olds, _ = check({}, http_props(task_id="nightly"))
    assert spec.AUTONAMED_KEY not in olds
    same, failures = check(olds, http_props(task_id="nightly"))
    assert failures == {} and same["task_id"] == "nightly"
    _, failures = check(olds, http_props(task_id="nightly", url="https://other.example/"))
    assert "reserves" in failures["task_id"] and "http_request" in failures["task_id"]
    assert "new task_id" in failures["task_id"]
    _, failures = check(olds, http_props(task_id="nightly-2", url="https://other.example/"))
    assert failures == {}
    # An unknown in preview may turn out unchanged: no failure yet.
    _, failures = check(olds, http_props(task_id="nightly", url=Unknown()))
    assert failures == {}


def test_check_returns_canonical_inputs_and_failures():
    inputs, failures = check({}, {**http_props(http_method="post", dispatch_deadline=900), "__name": "r"})
    assert failures == {}
    assert inputs["http_request"]["http_method"] == "POST" and inputs["dispatch_deadline"] == "900s"
    _, failures = check({}, http_props(url="ftp://x"))
    assert "http_request.url" in failures


def test_check_keeps_unknowns():
    u = Unknown()
    inputs, failures = check({}, {**http_props(queue=u), "__name": "r"})
    assert failures == {} and isinstance(inputs["queue"], Unknown)


def diff(olds_inputs, news):
    return P.diff("id", state_after_create(olds_inputs), check(olds_inputs, news)[0])


def test_no_change_no_diff_and_outputs_ignored():
    inputs, _ = check({}, {**http_props(), "__name": "r"})
    state = state_after_create(inputs)
    state.update(status="gone", dispatch_count=4, __provider="other-provider")
    result = P.diff("id", state, check(inputs, {**http_props(), "__name": "r"})[0])
    assert result.changes is False and result.replaces == []


def test_changing_url_replaces_the_task():
    inputs, _ = check({}, {**http_props(), "__name": "r"})
    result = diff(inputs, {**http_props(url="https://other.example/"), "__name": "r"})
    assert result.changes is True
    assert "http_request" in result.replaces and "task_id" in result.replaces  # fresh autoname too
    assert result.delete_before_replace is False


def test_each_spec_field_change_replaces_and_is_named():
    base, _ = check({}, http_props(task_id="t"))
    for field, news in [("queue", http_props(task_id="t2", queue=QUEUE + "x")),
                        ("schedule_time", http_props(task_id="t2", schedule_time="2099-01-01T00:00:00Z")),
                        ("dispatch_deadline", http_props(task_id="t2", dispatch_deadline="60s")),
                        ("http_request", http_props(task_id="t2", headers={"A": "b"}))]:
        result = P.diff("id", state_after_create(base), P.check({}, news).inputs)
        assert result.changes and field in result.replaces and "task_id" in result.replaces


def test_triggers_change_replaces():
    inputs, _ = check({}, {**http_props(triggers=[1]), "__name": "r"})
    result = diff(inputs, {**http_props(triggers=[2]), "__name": "r"})
    assert result.changes and "triggers" in result.replaces


def test_unknown_is_a_change():
    inputs, _ = check({}, http_props(task_id="t"))
    result = P.diff("id", state_after_create(inputs), {**inputs, "queue": Unknown()})
    assert result.changes is True and result.replaces == ["queue"]


def test_equivalent_forms_do_not_diff():
    inputs, _ = check({}, http_props(task_id="t", dispatch_deadline="600s", schedule_time="2026-01-02T00:00:00Z"))
    news = P.check(inputs, http_props(task_id="t", dispatch_deadline=600.0,
                                      schedule_time="2026-01-02T01:00:00+01:00")).inputs
    assert P.diff("id", state_after_create(inputs), news).changes is False


def test_update_keeps_outputs():
    inputs, _ = check({}, http_props(task_id="t"))
    state = state_after_create(inputs)
    outs = P.update("id", {**state, "__provider": "p"}, {**inputs, "__provider": "p"}).outs
    assert outs["status"] == state["status"] and outs["name"] == state["name"] and "__provider" not in outs
