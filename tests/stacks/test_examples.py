"""The examples as real stacks: the real Pulumi CLI through ``pulumi.automation`` (LocalWorkspace, a
local file backend) against one emulator per session, through our pytest plugin's fixtures.

Each lifecycle test walks one example: preview shows creates -> up creates -> the worker gets the task
-> refresh shows ``status: gone`` and keeps the resource -> another up changes nothing (and does not
re-enqueue) -> a changed input replaces the task under a new name -> destroy leaves the queue empty.
All waits are conditions with deadlines.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping

import pytest
from pulumi import automation as auto

from pulumi_cloudtasks import TASK_TYPE_TOKEN
from pulumi_cloudtasks.testing import wait_for

pytestmark = pytest.mark.stack

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TASK_PREFIX = "projects/stack-tests/locations/us-central1/queues/"
SECRET = "s3cr3t-api-key-7c1f0e"  # must never appear in the state file in plain text


def new_queue(example: str) -> str:
    return f"{TASK_PREFIX}{example}-{uuid.uuid4().hex[:8]}"


def changes(result: Any) -> dict[str, int]:
    """``{"create": 2}`` from a PreviewResult or UpResult, ignoring zero counts."""
    raw = result.change_summary if hasattr(result, "change_summary") else result.summary.resource_changes
    return {getattr(k, "value", k): v for k, v in (raw or {}).items() if v}


def tasks(factory: Any, stack: auto.Stack) -> dict[str, dict[str, Any]]:
    """Outputs of the stack's Task resources, by resource name (from the state, after refresh too)."""
    return {name: r["outputs"] for name, r in factory.resources(stack).items() if r["type"] == TASK_TYPE_TOKEN}


def task_id(name: str) -> str:
    return name.rsplit("/", 1)[1]


def up_changes_nothing(stack: auto.Stack, count: int) -> None:
    assert changes(stack.preview()) == {"same": count}
    assert changes(stack.up()) == {"same": count}


def refresh_shows_gone(factory: Any, stack: auto.Stack, names: Mapping[str, str]) -> None:
    stack.refresh()
    after = tasks(factory, stack)
    assert set(after) == set(names), "refresh must keep the tasks that ran in the stack"
    for resource, name in names.items():
        assert after[resource]["status"] == "gone", (resource, after[resource])
        assert after[resource]["name"] == name


def destroy_empties_queue(stack: auto.Stack, emulator: Any, queue: str) -> None:
    assert changes(stack.destroy()).get("delete", 0) >= 1
    assert emulator.list_tasks(queue) == []


# --- http-task: the full lifecycle, plus a secret header ----------------------------------------

def test_http_task_lifecycle(cloudtasks_stack, cloudtasks_emulator, http_worker):
    queue = new_queue("http")
    stack = cloudtasks_stack(EXAMPLES / "http-task", config={"queue": queue, "workerUrl": http_worker.url,
                                                              "message": "one"}, secrets={"apiKey": SECRET})
    assert changes(stack.preview()) == {"create": 2}  # the stack and the task

    up = stack.up()
    assert changes(up) == {"create": 2}
    name = up.outputs["name"].value
    assert name.startswith(f"{queue}/tasks/hello-")
    assert up.outputs["status"].value in ("scheduled", "dispatched", "gone")

    request = http_worker.got_task(task_id(name))
    assert request["path"] == "/hello" and request["method"] == "POST"
    refresh_shows_gone(cloudtasks_stack, stack, {"hello": name})
    # refresh then up: the task that ran is not enqueued again.
    up_changes_nothing(stack, 2)
    assert cloudtasks_emulator.list_tasks(queue) == []
    assert http_worker.count(lambda r: r["headers"].get("X-CloudTasks-TaskName") == task_id(name)) == 1

    # The secret header is ciphertext in the state file (inputs and outputs), never plain text.
    state = cloudtasks_stack.state_file(stack).read_text()
    assert SECRET not in state
    assert "X-Api-Key" in state or "ciphertext" in state
    assert "ciphertext" in state

    stack.set_config("message", auto.ConfigValue("two"))
    replaced = stack.up()
    assert changes(replaced) == {"replace": 1, "same": 1}
    new_name = replaced.outputs["name"].value
    assert new_name != name and new_name.startswith(f"{queue}/tasks/hello-")
    http_worker.got_task(task_id(new_name))
    assert SECRET not in cloudtasks_stack.state_file(stack).read_text()

    destroy_empties_queue(stack, cloudtasks_emulator, queue)


# --- scheduled-task: refresh shows scheduled; destroy deletes a task before it runs --------------

def test_scheduled_task_lifecycle(cloudtasks_stack, cloudtasks_emulator, http_worker):
    queue = new_queue("scheduled")
    in_an_hour = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    stack = cloudtasks_stack(EXAMPLES / "scheduled-task",
                             config={"queue": queue, "workerUrl": http_worker.url, "scheduleAt": in_an_hour})
    assert changes(stack.preview()) == {"create": 2}
    up = stack.up()
    assert changes(up) == {"create": 2}
    name = up.outputs["name"].value
    assert up.outputs["schedule_time"].value == in_an_hour

    stack.refresh()
    state = tasks(cloudtasks_stack, stack)["nightly-report"]
    assert (state["status"], state["dispatch_count"]) == ("scheduled", 0)
    up_changes_nothing(stack, 2)

    in_two_hours = (datetime.now(timezone.utc) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    stack.set_config("scheduleAt", auto.ConfigValue(in_two_hours))
    replaced = stack.up()
    assert changes(replaced) == {"replace": 1, "same": 1}
    new_name = replaced.outputs["name"].value
    assert new_name != name
    assert not cloudtasks_emulator.task_exists(name), "the replaced task must be deleted"
    assert [t.name for t in cloudtasks_emulator.list_tasks(queue)] == [new_name]

    destroy_empties_queue(stack, cloudtasks_emulator, queue)
    assert http_worker.count(lambda r: r["path"] == "/reports/nightly"
                             and r["headers"].get("X-CloudTasks-QueueName") == queue.rsplit("/", 1)[1]) == 0


# --- app-engine-task -----------------------------------------------------------------------------

def test_app_engine_task_lifecycle(cloudtasks_stack, cloudtasks_emulator, http_worker):
    queue = new_queue("appengine")
    path = f"/tasks/cleanup-{uuid.uuid4().hex[:8]}"
    stack = cloudtasks_stack(EXAMPLES / "app-engine-task", config={"queue": queue, "relativeUri": path})
    assert changes(stack.preview()) == {"create": 2}
    up = stack.up()
    assert changes(up) == {"create": 2}
    name = up.outputs["name"].value

    # App Engine tasks carry X-AppEngine-* headers (the worker records X-CloudTasks-* only): match the path.
    http_worker.wait_for_request(lambda r: r["path"] == path, f"App Engine task {name}")
    wait_for(lambda: not cloudtasks_emulator.task_exists(name), message=f"{name} done")
    refresh_shows_gone(cloudtasks_stack, stack, {"cleanup": name})
    up_changes_nothing(stack, 2)
    assert http_worker.count(lambda r: r["path"] == path) == 1

    stack.set_config("service", auto.ConfigValue("worker-v2"))
    replaced = stack.up()
    assert changes(replaced) == {"replace": 1, "same": 1}
    assert replaced.outputs["name"].value != name
    wait_for(lambda: http_worker.count(lambda r: r["path"] == path and r["status"] == 200) == 2,
             message="the replacement reached the worker")

    destroy_empties_queue(stack, cloudtasks_emulator, queue)


# --- authenticated-task: OIDC verified by the worker, OAuth sent ---------------------------------

def test_authenticated_task_lifecycle(cloudtasks_stack, cloudtasks_emulator, oidc_worker, oauth_worker):
    queue = new_queue("auth")
    stack = cloudtasks_stack(EXAMPLES / "authenticated-task", config={
        "queue": queue, "oidcUrl": f"{oidc_worker.url}/private/reindex", "oauthUrl": f"{oauth_worker.url}/v1/run",
        "serviceAccount": "invoker@stack-tests.iam.gserviceaccount.com"})
    assert changes(stack.preview()) == {"create": 3}
    up = stack.up()
    assert changes(up) == {"create": 3}
    oidc_name, oauth_name = up.outputs["oidc_name"].value, up.outputs["oauth_name"].value

    request = oidc_worker.got_task(task_id(oidc_name))
    assert request["oidc"] == {"verified": True, "email": "invoker@stack-tests.iam.gserviceaccount.com",
                               "aud": f"{oidc_worker.url}/private/reindex"}
    oauth_worker.got_task(task_id(oauth_name))
    refresh_shows_gone(cloudtasks_stack, stack, {"reindex": oidc_name, "call-google-api": oauth_name})
    up_changes_nothing(stack, 3)

    stack.set_config("serviceAccount", auto.ConfigValue("other@stack-tests.iam.gserviceaccount.com"))
    replaced = stack.up()
    assert changes(replaced) == {"replace": 2, "same": 1}
    new_oidc = replaced.outputs["oidc_name"].value
    assert new_oidc != oidc_name
    assert oidc_worker.got_task(task_id(new_oidc))["oidc"]["email"] == "other@stack-tests.iam.gserviceaccount.com"

    destroy_empties_queue(stack, cloudtasks_emulator, queue)


# --- triggers: a task that ran is re-run only by a trigger change --------------------------------

def test_triggers_rerun_only_on_change(cloudtasks_stack, cloudtasks_emulator, http_worker):
    queue = new_queue("triggers")
    stack = cloudtasks_stack(EXAMPLES / "triggers", config={"queue": queue, "workerUrl": http_worker.url,
                                                             "version": "1"})
    assert changes(stack.preview()) == {"create": 2}
    up = stack.up()
    assert changes(up) == {"create": 2}
    name = up.outputs["name"].value
    http_worker.got_task(task_id(name))
    refresh_shows_gone(cloudtasks_stack, stack, {"migrate": name})
    up_changes_nothing(stack, 2)

    stack.set_config("version", auto.ConfigValue("2"))
    preview = stack.preview(diff=True)
    assert changes(preview) == {"replace": 1, "same": 1}
    assert "triggers" in preview.stdout
    replaced = stack.up()
    new_name = replaced.outputs["name"].value
    assert changes(replaced) == {"replace": 1, "same": 1} and new_name != name
    http_worker.got_task(task_id(new_name))
    migrations = [r for r in http_worker.requests() if r["headers"].get("X-CloudTasks-QueueName") == queue.rsplit("/", 1)[1]]
    assert [r["headers"]["X-CloudTasks-TaskName"] for r in migrations] == [task_id(name), task_id(new_name)]

    destroy_empties_queue(stack, cloudtasks_emulator, queue)


# --- bad inputs: preview fails with the provider's check message naming the field -----------------

BAD_INPUTS = [
    ("http-task", {"workerUrl": "ftp://127.0.0.1:8090"}, "http_request.url",
     "must start with 'http://' or 'https://'"),
    ("scheduled-task", {"scheduleAt": (datetime.now(timezone.utc) + timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ")},
     "schedule_time", "too far in the future"),
    ("app-engine-task", {"relativeUri": "tasks/no-leading-slash"}, "app_engine_http_request.relative_uri",
     "must begin with"),
    ("authenticated-task", {"oidcUrl": "http://127.0.0.1:8443/private"}, "http_request.url", "https://"),
]


@pytest.mark.parametrize("example,config,field,rule", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_fails_preview(cloudtasks_stack, cloudtasks_emulator, example, config, field, rule):
    queue = new_queue("bad")
    stack = cloudtasks_stack(EXAMPLES / example, config={"queue": queue, **config})
    with pytest.raises(auto.errors.CommandError) as failure:
        stack.preview()
    message = str(failure.value)
    assert field in message and rule in message, message[-3000:]
    assert cloudtasks_emulator.list_tasks(queue) == []
