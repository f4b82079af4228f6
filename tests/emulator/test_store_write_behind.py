"""The temporary store writes CreateTask rows behind; every rule and every read must be as if it did not."""
from __future__ import annotations

import sqlite3
import time

import grpc
import pytest

from cloudtasks_emulator.core import messages as m
from cloudtasks_emulator.core.errors import ApiError
from cloudtasks_emulator.core.name_filter import NameFilter
from cloudtasks_emulator.core.service import QUEUE_MISSING, TASK_RESERVED, CloudTasksService
from cloudtasks_emulator.core.store import Store

QUEUE = "projects/p/locations/l/queues/q"


@pytest.fixture
def service():
    store = Store()
    svc = CloudTasksService(store)
    svc.update_queue(m.tasks_v2.UpdateQueueRequest.pb()(queue=m.Queue(name=QUEUE)))
    yield svc
    store.close()


def _create(service: CloudTasksService, task_id: str, queue: str = QUEUE, ahead: float = 3600):
    req = m.tasks_v2.CreateTaskRequest.pb()(parent=queue)
    req.task.name = f"{queue}/tasks/{task_id}"
    req.task.http_request.url = "https://worker.invalid/x"
    req.task.schedule_time.FromNanoseconds(int((time.time() + ahead) * 1e9))
    return service.create_task(req)


def _refused(fn) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(ApiError) as info:
        fn()
    return info.value.code, info.value.message


def test_a_created_task_waits_in_memory_and_every_read_sees_it(service):
    store = service.store
    _create(service, "a")
    _create(service, "b", ahead=60)
    assert len(store._pending) == 2  # nothing written yet
    assert store.get_task(f"{QUEUE}/tasks/a") is not None
    assert store._pending == []  # the read inserted them first
    _create(service, "c", ahead=10)
    assert store.next_due(QUEUE) == pytest.approx(time.time() + 10, abs=2)
    _create(service, "d")
    assert [t.name.rsplit("/", 1)[1] for t in store.list_tasks(QUEUE, "", 10)] == ["a", "b", "c", "d"]


def test_a_name_taken_or_reserved_is_refused_even_before_it_is_written(service):
    _create(service, "a")
    code, message = _refused(lambda: _create(service, "a"))
    assert code == grpc.StatusCode.ALREADY_EXISTS and message != TASK_RESERVED
    assert service.store.delete_task(f"{QUEUE}/tasks/a", time.time() + 3600)
    assert _refused(lambda: _create(service, "a")) == (grpc.StatusCode.ALREADY_EXISTS, TASK_RESERVED)


def test_tasks_written_behind_go_with_their_deleted_queue(service):
    store = service.store
    _create(service, "a")
    service.delete_queue(m.tasks_v2.DeleteQueueRequest.pb()(name=QUEUE))
    assert store.get_task(f"{QUEUE}/tasks/a") is None
    assert _refused(lambda: _create(service, "b")) == (grpc.StatusCode.NOT_FOUND, QUEUE_MISSING)


def test_purge_removes_tasks_still_written_behind(service):
    _create(service, "a")
    service.purge_queue(m.tasks_v2.PurgeQueueRequest.pb()(name=QUEUE))
    assert service.store.get_task(f"{QUEUE}/tasks/a") is None
    assert _refused(lambda: _create(service, "a"))[1] == TASK_RESERVED


def test_taken_names_stay_refused_across_rebuilds_of_the_name_filter(service):
    store = service.store
    store._maybe_taken = NameFilter(3)  # full at the third name: rebuilt from the tables
    for i in range(10):
        _create(service, f"t{i}")
    assert store.delete_task(f"{QUEUE}/tasks/t0", time.time() + 3600)
    store._maybe_taken = NameFilter(1)
    _create(service, "t10")  # fills it: rebuilt from tasks and live reservations
    assert store._maybe_taken.count == 11 and not store._maybe_taken.full
    assert _refused(lambda: _create(service, "t0"))[1] == TASK_RESERVED
    assert _refused(lambda: _create(service, "t5"))[0] == grpc.StatusCode.ALREADY_EXISTS
    assert len(store.list_tasks(QUEUE, "", 100)) == 10


def test_the_name_filter_never_forgets_a_name_and_rarely_imagines_one():
    names = [f"{QUEUE}/tasks/n{i}" for i in range(5000)]
    f = NameFilter.of(iter(names[:2500]), 2500, min_capacity=2500)
    assert all(n in f for n in names[:2500])
    false_maybe = sum(n in f for n in names[2500:])
    assert false_maybe < 2500 * 0.05
    fresh = NameFilter(10)
    assert fresh.add_if_new("a") and "a" in fresh and not fresh.add_if_new("a") and fresh.count == 1


def test_a_failed_write_loses_nothing_and_is_tried_again(service):
    store = service.store
    real = store._db

    class FailingOnce:
        failed = False

        def executemany(self, sql, rows):
            if not self.failed:
                self.failed = True
                raise sqlite3.OperationalError("disk I/O error")
            return real.executemany(sql, rows)

        def __getattr__(self, name):
            return getattr(real, name)

    _create(service, "a")
    store._db = FailingOnce()
    try:
        with pytest.raises(sqlite3.OperationalError):
            store.get_task(f"{QUEUE}/tasks/a")
        assert len(store._pending) == 1
        assert store.get_task(f"{QUEUE}/tasks/a") is not None
    finally:
        store._db = real


def test_the_durable_store_commits_every_create_before_it_returns(tmp_path):
    store = Store(str(tmp_path))
    service = CloudTasksService(store)
    service.update_queue(m.tasks_v2.UpdateQueueRequest.pb()(queue=m.Queue(name=QUEUE)))
    try:
        _create(service, "a")
        assert store._pending == []
    finally:
        store.close()
