"""Task and queue names: formats, parent matching, generated IDs, and the de-duplication window."""
from __future__ import annotations

import re

import pytest
from emu_helpers import LOCATION, QUEUE
from google.api_core import exceptions
from google.cloud import tasks_v2

from cloudtasks_emulator.testing import make_client, run_emulator

URL = "http://127.0.0.1:9/never"  # paused queues below: nothing is dispatched


def _http_task(name: str = "") -> dict:
    return {"name": name, "http_request": {"url": URL}}


@pytest.fixture
def paused(client):
    client.pause_queue(name=QUEUE)
    return client


def test_task_without_name_gets_a_random_server_id(paused):
    first = paused.create_task(parent=QUEUE, task=_http_task())
    second = paused.create_task(parent=QUEUE, task=_http_task())
    assert re.fullmatch(re.escape(QUEUE) + r"/tasks/\d{15,}", first.name)
    assert first.name != second.name


def test_task_name_in_another_queue_is_rejected(paused):
    other = f"{LOCATION}/queues/other/tasks/t1"
    with pytest.raises(exceptions.InvalidArgument) as err:
        paused.create_task(parent=QUEUE, task=_http_task(other))
    assert err.value.message == (
        f"The queue name from request ('{QUEUE}') must be the same as the queue name in the named task "
        f"('{LOCATION}/queues/other')."
    )


@pytest.mark.parametrize("task_id", ["a b", "x" * 501, "dot.ted"])
def test_invalid_task_id_is_rejected_with_the_service_message(paused, task_id):
    with pytest.raises(exceptions.InvalidArgument) as err:
        paused.create_task(parent=QUEUE, task=_http_task(f"{QUEUE}/tasks/{task_id}"))
    assert err.value.message.startswith(f'Task ID "{task_id}" can contain only letters')


def test_malformed_queue_name_is_rejected(client):
    with pytest.raises(exceptions.InvalidArgument) as err:
        client.get_queue(name="projects/p/queues/q")
    assert err.value.message.startswith("Queue name must be formatted")
    with pytest.raises(exceptions.InvalidArgument) as err:
        client.create_queue(parent=LOCATION, queue={"name": f"{LOCATION}/queues/x_y"})
    assert 'Queue ID "x_y" can contain only letters' in err.value.message


def test_existing_task_name_is_already_exists(paused):
    name = f"{QUEUE}/tasks/dup"
    paused.create_task(parent=QUEUE, task=_http_task(name))
    with pytest.raises(exceptions.AlreadyExists) as err:
        paused.create_task(parent=QUEUE, task=_http_task(name))
    assert err.value.message == "Requested entity already exists"


def test_deleted_task_name_is_reserved_for_the_window(paused):
    name = f"{QUEUE}/tasks/gone"
    paused.create_task(parent=QUEUE, task=_http_task(name))
    paused.delete_task(name=name)
    with pytest.raises(exceptions.AlreadyExists) as err:
        paused.create_task(parent=QUEUE, task=_http_task(name))
    assert err.value.message.startswith(
        "The task cannot be created because a task with this name existed too recently.")
    with pytest.raises(exceptions.NotFound) as err:
        paused.get_task(name=name)
    assert "existed recently" in err.value.message


def test_name_is_free_again_after_the_reservation_window(manual_emulator, manual_client):
    manual_client.pause_queue(name=QUEUE)
    name = f"{QUEUE}/tasks/again"
    manual_client.create_task(parent=QUEUE, task=_http_task(name))
    manual_client.delete_task(name=name)
    manual_emulator.clock.advance(3599)
    with pytest.raises(exceptions.AlreadyExists):
        manual_client.create_task(parent=QUEUE, task=_http_task(name))
    manual_emulator.clock.advance(2)
    assert manual_client.create_task(parent=QUEUE, task=_http_task(name)).name == name


def test_name_reservation_is_configurable():
    with run_emulator(queues=[QUEUE], http_port=None, name_reservation=0) as emu:
        client = make_client(emu.grpc_target)
        client.pause_queue(name=QUEUE)
        name = f"{QUEUE}/tasks/reuse"
        client.create_task(parent=QUEUE, task=_http_task(name))
        client.delete_task(name=name)
        assert client.create_task(parent=QUEUE, task=_http_task(name)).name == name


def test_never_existing_task_is_plain_not_found(client):
    with pytest.raises(exceptions.NotFound) as err:
        client.get_task(name=f"{QUEUE}/tasks/nope")
    assert err.value.message == "Requested entity was not found."
    with pytest.raises(exceptions.NotFound):
        client.delete_task(name=f"{QUEUE}/tasks/nope")


def test_task_in_a_missing_queue_is_not_found_with_the_service_message(client):
    with pytest.raises(exceptions.NotFound) as err:
        client.create_task(parent=f"{LOCATION}/queues/missing", task=_http_task())
    assert err.value.message.startswith("Queue does not exist. If you just created the queue")


def test_auto_create_queues_creates_the_queue_on_first_task():
    with run_emulator(http_port=None, auto_create_queues=True) as emu:
        client = make_client(emu.grpc_target)
        parent = f"{LOCATION}/queues/auto"
        client.create_task(parent=parent, task=_http_task())
        assert client.get_queue(name=parent).state == tasks_v2.Queue.State.RUNNING


def test_deleted_queue_name_cannot_be_reused_within_the_window(client):
    name = f"{LOCATION}/queues/shortlived"
    client.create_queue(parent=LOCATION, queue={"name": name})
    with pytest.raises(exceptions.AlreadyExists) as err:
        client.create_queue(parent=LOCATION, queue={"name": name})
    assert err.value.message == "Queue already exists"
    client.delete_queue(name=name)
    with pytest.raises(exceptions.FailedPrecondition) as err:
        client.create_queue(parent=LOCATION, queue={"name": name})
    assert "existed too recently" in err.value.message
