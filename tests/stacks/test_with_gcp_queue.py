"""examples/with-gcp-queue (real GCP only) checked for wiring under ``pulumi.runtime.set_mocks``:
a gcp.cloudtasks.Queue, and Tasks whose ``queue`` is that queue's id (so they depend on it)."""
from __future__ import annotations

import runpy
from pathlib import Path

import pulumi
import pytest

from pulumi_cloudtasks import TASK_TYPE_TOKEN

PROGRAM = Path(__file__).resolve().parents[2] / "examples" / "with-gcp-queue" / "__main__.py"
PROJECT = "cloudtasks-example-with-gcp-queue"
QUEUE_ID = "projects/my-project/locations/europe-west1/queues/jobs-1234567"

registered: list[pulumi.runtime.MockResourceArgs] = []


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        registered.append(args)
        outputs = {k: v for k, v in args.inputs.items() if not k.startswith("__")}
        if args.typ == "gcp:cloudtasks/queue:Queue":
            return QUEUE_ID, {**outputs, "name": "jobs-1234567"}
        name = f"{args.inputs['queue']}/tasks/{args.name}-abc"
        return name, {**outputs, "name": name, "status": "scheduled"}

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture
def program_outputs():
    registered.clear()
    pulumi.runtime.set_mocks(Mocks(), project=PROJECT, stack="test", preview=False)
    pulumi.runtime.set_all_config({
        f"{PROJECT}:workerUrl": "https://worker-xyz-ew.a.run.app/",
        f"{PROJECT}:invoker": "tasks-invoker@my-project.iam.gserviceaccount.com",
        "gcp:project": "my-project",
        "gcp:region": "europe-west1",
    })
    yield
    pulumi.runtime.set_all_config({})


@pulumi.runtime.test
def test_queue_and_tasks_are_wired(program_outputs):
    program = runpy.run_path(str(PROGRAM), run_name="__main__")

    def check(_):
        by_type: dict[str, list[pulumi.runtime.MockResourceArgs]] = {}
        for args in registered:
            by_type.setdefault(args.typ, []).append(args)
        (queue,) = by_type["gcp:cloudtasks/queue:Queue"]
        assert queue.inputs["location"] == "europe-west1"
        assert queue.inputs["rateLimits"]["maxDispatchesPerSecond"] == 5
        assert queue.inputs["retryConfig"]["maxAttempts"] == 5
        tasks = {t.name: t.inputs for t in by_type[TASK_TYPE_TOKEN]}
        assert set(tasks) == {"reindex", "warmup"}
        for name, inputs in tasks.items():
            assert inputs["queue"] == QUEUE_ID, name  # queue.id: the full queue path
            assert inputs["http_request"]["oidc_token"] == {
                "service_account_email": "tasks-invoker@my-project.iam.gserviceaccount.com"}
            assert inputs["http_request"]["url"].startswith("https://worker-xyz-ew.a.run.app/")
        assert tasks["reindex"]["http_request"]["url"] == "https://worker-xyz-ew.a.run.app/reindex"
        assert tasks["reindex"]["dispatch_deadline"] == "900s"
        assert tasks["warmup"]["http_request"]["http_method"] == "GET"

    # Resolves once the queue and both tasks are registered (the tasks wait for queue.id).
    return pulumi.Output.all(program["queue"].id, program["reindex"].name, program["warmup"].name).apply(check)
