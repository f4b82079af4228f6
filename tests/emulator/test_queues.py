"""Queue lifecycle: create, update, pause/resume, purge, delete, IAM."""
from __future__ import annotations

import datetime as dt

import pytest
from emu_helpers import LOCATION, QUEUE
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.iam.v1 import policy_pb2
from google.protobuf import field_mask_pb2

from cloudtasks_emulator.testing import make_client, run_emulator

RUNNING, PAUSED = tasks_v2.Queue.State.RUNNING, tasks_v2.Queue.State.PAUSED


def test_new_queue_has_default_limits_and_derived_burst(client):
    queue = client.create_queue(parent=LOCATION, queue={
        "name": f"{LOCATION}/queues/slow", "rate_limits": {"max_dispatches_per_second": 5, "max_burst_size": 77}})
    assert queue.state == RUNNING
    assert queue.rate_limits.max_dispatches_per_second == 5
    assert queue.rate_limits.max_burst_size == 5  # output-only: derived, the request's value is ignored
    assert queue.rate_limits.max_concurrent_dispatches == 1000
    assert queue.retry_config.max_attempts == 100
    assert queue.retry_config.max_backoff == dt.timedelta(seconds=3600)
    assert client.get_queue(name=queue.name) == queue


def test_queue_limits_are_validated(client):
    with pytest.raises(exceptions.InvalidArgument):
        client.create_queue(parent=LOCATION, queue={"name": f"{LOCATION}/queues/fast",
                                                    "rate_limits": {"max_dispatches_per_second": 501}})
    with pytest.raises(exceptions.InvalidArgument):
        client.update_queue(queue={"name": QUEUE, "retry_config": {"max_attempts": -2}})


def test_update_queue_changes_only_masked_fields(client):
    client.update_queue(queue={"name": QUEUE, "rate_limits": {"max_dispatches_per_second": 10}})
    queue = client.update_queue(queue={"name": QUEUE, "retry_config": {"max_attempts": 3},
                                       "rate_limits": {"max_dispatches_per_second": 99}},
                                update_mask=field_mask_pb2.FieldMask(paths=["retry_config.max_attempts"]))
    assert queue.retry_config.max_attempts == 3
    assert queue.rate_limits.max_dispatches_per_second == 10


def test_update_queue_cannot_change_state(client):
    with pytest.raises(exceptions.InvalidArgument):
        client.update_queue(queue={"name": QUEUE, "state": PAUSED},
                            update_mask=field_mask_pb2.FieldMask(paths=["state"]))
    assert client.update_queue(queue={"name": QUEUE, "state": PAUSED}).state == RUNNING


def test_update_queue_creates_a_missing_queue(client):
    name = f"{LOCATION}/queues/upserted"
    queue = client.update_queue(queue={"name": name, "retry_config": {"max_attempts": 5}})
    assert client.get_queue(name=name) == queue and queue.retry_config.max_attempts == 5


def test_pause_and_resume(client):
    assert client.pause_queue(name=QUEUE).state == PAUSED
    assert client.get_queue(name=QUEUE).state == PAUSED
    assert client.resume_queue(name=QUEUE).state == RUNNING


def test_missing_queue_operations_are_not_found(client):
    missing = f"{LOCATION}/queues/missing"
    for call in (client.get_queue, client.pause_queue, client.resume_queue, client.purge_queue, client.delete_queue):
        with pytest.raises(exceptions.NotFound):
            call(name=missing)


def test_purge_deletes_tasks_created_before_it(client):
    client.pause_queue(name=QUEUE)
    old = client.create_task(parent=QUEUE, task={"http_request": {"url": "http://h/"}})
    queue = client.purge_queue(name=QUEUE)
    assert queue.purge_time.timestamp() > 0
    new = client.create_task(parent=QUEUE, task={"http_request": {"url": "http://h/"}})
    assert [t.name for t in client.list_tasks(parent=QUEUE)] == [new.name]
    with pytest.raises(exceptions.NotFound):
        client.get_task(name=old.name)


def test_delete_queue_removes_its_tasks(client):
    name = f"{LOCATION}/queues/doomed"
    client.create_queue(parent=LOCATION, queue={"name": name})
    client.pause_queue(name=name)
    task = client.create_task(parent=name, task={"http_request": {"url": "http://h/"}})
    client.delete_queue(name=name)
    with pytest.raises(exceptions.NotFound):
        client.get_queue(name=name)
    with pytest.raises(exceptions.NotFound):
        client.get_task(name=task.name)


def test_iam_policy_is_stored_and_permissions_echoed(client):
    assert client.get_iam_policy(resource=QUEUE).bindings == []
    policy = policy_pb2.Policy(bindings=[policy_pb2.Binding(role="roles/cloudtasks.enqueuer", members=["user:a@b.c"])])
    stored = client.set_iam_policy(request={"resource": QUEUE, "policy": policy})
    assert stored.bindings == policy.bindings and stored.etag
    assert client.get_iam_policy(resource=QUEUE) == stored
    stale = policy_pb2.Policy(etag=b"stale")
    with pytest.raises(exceptions.Aborted):
        client.set_iam_policy(request={"resource": QUEUE, "policy": stale})
    asked = ["cloudtasks.tasks.create", "cloudtasks.queues.delete"]
    assert list(client.test_iam_permissions(resource=QUEUE, permissions=asked).permissions) == asked
    with pytest.raises(exceptions.NotFound):
        client.get_iam_policy(resource=f"{LOCATION}/queues/missing")


def test_config_file_defines_queues_with_limits(tmp_path):
    config = tmp_path / "queues.yaml"
    config.write_text(f"""
queues:
  - name: {LOCATION}/queues/configured
    rate_limits: {{max_dispatches_per_second: 2, max_concurrent_dispatches: 3}}
    retry_config: {{max_attempts: 4, min_backoff: 1s, max_backoff: 8, max_doublings: 2}}
  - name: {LOCATION}/queues/held
    state: PAUSED
""")
    with run_emulator(http_port=None, config_file=str(config)) as emu:
        client = make_client(emu.grpc_target)
        queue = client.get_queue(name=f"{LOCATION}/queues/configured")
        assert queue.rate_limits.max_dispatches_per_second == 2
        assert queue.rate_limits.max_concurrent_dispatches == 3
        assert queue.retry_config.max_attempts == 4
        assert queue.retry_config.min_backoff == dt.timedelta(seconds=1)
        assert queue.retry_config.max_backoff == dt.timedelta(seconds=8)
        assert client.get_queue(name=f"{LOCATION}/queues/held").state == PAUSED
