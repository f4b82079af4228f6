"""Task views and ListTasks/ListQueues paging."""
from __future__ import annotations

import pytest
from emu_helpers import LOCATION, QUEUE
from google.api_core import exceptions
from google.cloud import tasks_v2

BASIC, FULL = tasks_v2.Task.View.BASIC, tasks_v2.Task.View.FULL


@pytest.fixture
def paused(client):
    client.pause_queue(name=QUEUE)
    return client


def _create(client, task_id: str, view=None) -> tasks_v2.Task:
    request = {"parent": QUEUE, "task": {"name": f"{QUEUE}/tasks/{task_id}",
                                          "http_request": {"url": "http://h/", "body": b"secret"}}}
    if view is not None:
        request["response_view"] = view
    return client.create_task(request=request)


def test_basic_view_omits_the_body_and_full_view_returns_it(paused):
    basic = _create(paused, "b1")
    assert basic.view == BASIC and basic.http_request.body == b""
    full = paused.get_task(request={"name": basic.name, "response_view": FULL})
    assert full.view == FULL and full.http_request.body == b"secret"
    assert paused.get_task(name=basic.name).http_request.body == b""


def test_app_engine_body_is_omitted_in_basic_view(paused):
    task = paused.create_task(parent=QUEUE, task={"app_engine_http_request": {"relative_uri": "/x", "body": b"b"}})
    assert task.app_engine_http_request.body == b""
    assert paused.get_task(request={"name": task.name, "response_view": FULL}).app_engine_http_request.body == b"b"


def test_list_tasks_sets_the_view_on_every_task(paused):
    for i in range(3):
        _create(paused, f"v{i}")
    tasks = list(paused.list_tasks(request={"parent": QUEUE, "response_view": FULL}))
    assert {t.view for t in tasks} == {FULL} and {t.http_request.body for t in tasks} == {b"secret"}
    assert {t.view for t in paused.list_tasks(parent=QUEUE)} == {BASIC}


def test_list_tasks_pages_through_every_task_once(paused):
    for i in range(7):
        _create(paused, f"p{i}")
    first = paused.list_tasks(request={"parent": QUEUE, "page_size": 3})
    page = next(iter(first.pages))
    assert len(page.tasks) == 3 and page.next_page_token
    names = [t.name for t in paused.list_tasks(request={"parent": QUEUE, "page_size": 3})]
    assert sorted(names) == sorted({f"{QUEUE}/tasks/p{i}" for i in range(7)})


def test_list_tasks_rejects_page_size_over_1000(paused):
    with pytest.raises(exceptions.InvalidArgument):
        next(iter(paused.list_tasks(request={"parent": QUEUE, "page_size": 1001}).pages))


def test_list_tasks_rejects_a_forged_page_token(paused):
    with pytest.raises(exceptions.InvalidArgument):
        next(iter(paused.list_tasks(request={"parent": QUEUE, "page_token": "garbage!"}).pages))


def test_list_tasks_of_a_missing_queue_is_not_found(client):
    with pytest.raises(exceptions.NotFound):
        list(client.list_tasks(parent=f"{LOCATION}/queues/missing"))


def test_list_queues_is_lexicographic_and_pages(client):
    for queue_id in ["zeta", "alpha", "mid"]:
        client.create_queue(parent=LOCATION, queue={"name": f"{LOCATION}/queues/{queue_id}"})
    names = [q.name.rsplit("/", 1)[1] for q in client.list_queues(request={"parent": LOCATION, "page_size": 2})]
    assert names == ["alpha", "default", "mid", "zeta"]


def test_list_queues_filters_on_state(client):
    client.create_queue(parent=LOCATION, queue={"name": f"{LOCATION}/queues/stopped"})
    client.pause_queue(name=f"{LOCATION}/queues/stopped")
    paused = [q.name for q in client.list_queues(request={"parent": LOCATION, "filter": "state: PAUSED"})]
    assert paused == [f"{LOCATION}/queues/stopped"]
    with pytest.raises(exceptions.InvalidArgument):
        list(client.list_queues(request={"parent": LOCATION, "filter": "name: x"}))


def test_list_queues_only_shows_the_location(client):
    client.create_queue(parent="projects/other/locations/eu", queue={"name": "projects/other/locations/eu/queues/q"})
    assert [q.name for q in client.list_queues(parent=LOCATION)] == [QUEUE]
