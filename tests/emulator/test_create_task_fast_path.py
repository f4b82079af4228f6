"""CreateTask's single-transaction store path and the dispatcher's due-aware wake-up (bench figure 1a)."""
from __future__ import annotations

import sqlite3
import time

import grpc
import pytest

from cloudtasks_emulator.core import messages as m
from cloudtasks_emulator.core.clock import ManualClock
from cloudtasks_emulator.core.dispatcher import Dispatcher
from cloudtasks_emulator.core.errors import ApiError
from cloudtasks_emulator.core.service import QUEUE_MISSING, TASK_RESERVED, CloudTasksService
from cloudtasks_emulator.core.store import DB_FILE_NAME, Store
from pulumi_cloudtasks.testing import wait_for

QUEUE = "projects/p/locations/l/queues/q"


def _service(tmp_path=None, **kwargs):
    store = Store(str(tmp_path) if tmp_path is not None else None)
    service = CloudTasksService(store, **kwargs)
    service.update_queue(m.tasks_v2.UpdateQueueRequest.pb()(queue=m.Queue(name=QUEUE)))
    return store, service


def _create(service, task_id: str, *, queue: str = QUEUE, app_engine: bool = False, ahead: float = 3600):
    req = m.tasks_v2.CreateTaskRequest.pb()(parent=queue)
    req.task.name = f"{queue}/tasks/{task_id}"
    if app_engine:
        req.task.app_engine_http_request.relative_uri = "/work"
    else:
        req.task.http_request.url = "https://worker.invalid/x"
    req.task.schedule_time.FromNanoseconds(int((time.time() + ahead) * 1e9))
    return service.create_task(req)


def _code(fn):
    with pytest.raises(ApiError) as info:
        fn()
    return info.value.code, info.value.message


def test_exists_reserved_and_missing_queue_are_told_apart():
    store, service = _service()
    try:
        _create(service, "a")
        code, message = _code(lambda: _create(service, "a"))
        assert code == grpc.StatusCode.ALREADY_EXISTS and message != TASK_RESERVED
        store.delete_task(f"{QUEUE}/tasks/a", time.time() + 3600)
        code, message = _code(lambda: _create(service, "a"))
        assert (code, message) == (grpc.StatusCode.ALREADY_EXISTS, TASK_RESERVED)
        missing = "projects/p/locations/l/queues/missing"
        code, message = _code(lambda: _create(service, "b", queue=missing))
        assert (code, message) == (grpc.StatusCode.NOT_FOUND, QUEUE_MISSING)
        # A failed insert leaves nothing behind and does not block a later good one.
        _create(service, "c")
        assert store.get_task(f"{QUEUE}/tasks/c") is not None
    finally:
        store.close()


def test_app_engine_task_takes_the_queue_routing_override():
    store, service = _service()
    try:
        queue = store.get_queue(QUEUE)
        queue.app_engine_routing_override.service = "worker"
        store.put_queue(queue)
        task = _create(service, "ae", app_engine=True)
        routing = task.app_engine_http_request.app_engine_routing
        assert routing.service == "worker" and routing.host.startswith("worker.")
        stored = store.get_task(f"{QUEUE}/tasks/ae").app_engine_http_request.app_engine_routing
        assert stored.service == "worker"
    finally:
        store.close()


@pytest.mark.parametrize("app_engine", [False, True])
def test_auto_create_queues_creates_the_queue_in_the_same_transaction(app_engine):
    store, service = _service(auto_create_queues=True)
    other = "projects/p/locations/l/queues/auto"
    try:
        # Even a recently deleted queue name is auto-created (as before).
        service.update_queue(m.tasks_v2.UpdateQueueRequest.pb()(queue=m.Queue(name=other)))
        store.delete_queue(other, time.time() + 3600)
        _create(service, "t", queue=other, app_engine=app_engine)
        queue = store.get_queue(other)
        assert queue is not None and queue.rate_limits.max_dispatches_per_second > 0
        assert store.get_task(f"{other}/tasks/t") is not None
        code, _ = _code(lambda: _create(service, "t", queue=other, app_engine=app_engine))
        assert code == grpc.StatusCode.ALREADY_EXISTS
    finally:
        store.close()


def test_created_task_is_committed_before_the_reply(tmp_path):
    store, service = _service(tmp_path)
    try:
        _create(service, "durable")
        other = sqlite3.connect(str(tmp_path / DB_FILE_NAME))
        rows = other.execute("SELECT name FROM tasks").fetchall()
        other.close()
        assert rows == [(f"{QUEUE}/tasks/durable",)]
    finally:
        store.close()


def _counting_dispatcher(store, clock):
    dispatcher = Dispatcher(store, clock)
    plans: list[float] = []
    plan = dispatcher._plan

    def counting_plan():
        plans.append(clock.now())
        return plan()

    dispatcher._plan = counting_plan  # type: ignore[method-assign]
    return dispatcher, plans


def _settled(dispatcher) -> bool:
    with dispatcher._cond:
        return dispatcher._wake_at is not None and not dispatcher._dirty


def test_a_future_task_brings_the_wake_up_forward_without_a_re_plan():
    clock = ManualClock()
    store = Store()
    service = CloudTasksService(store, clock)
    service.update_queue(m.tasks_v2.UpdateQueueRequest.pb()(queue=m.Queue(name=QUEUE)))
    service.pause_queue(m.tasks_v2.PauseQueueRequest.pb()(name=QUEUE))  # planning, not dispatching, is under test
    dispatcher, plans = _counting_dispatcher(store, clock)
    service.dispatcher = dispatcher
    dispatcher.start()
    try:
        wait_for(lambda: _settled(dispatcher), message="the first plan cycle")
        assert dispatcher._wake_at == float("inf")
        planned = len(plans)
        _create(service, "later", ahead=3600)  # before "never": an earlier wake-up, no cycle
        assert dispatcher._wake_at == pytest.approx(clock.now() + 3600, abs=1)
        _create(service, "even-later", ahead=7200)  # after the planned look: nothing changes
        assert dispatcher._wake_at == pytest.approx(clock.now() + 3600, abs=1)
        _create(service, "sooner", ahead=60)
        assert dispatcher._wake_at == pytest.approx(clock.now() + 60, abs=1)
        assert len(plans) == planned and _settled(dispatcher)
        clock.advance(61)  # the wake-up time comes: one plan cycle looks at the queue
        wait_for(lambda: len(plans) > planned, message="a plan cycle at the wake-up time")
    finally:
        dispatcher.stop()
        store.close()


def test_a_task_created_while_planning_is_looked_at_right_after_the_cycle():
    """The cycle may have read the queue before the insert: a task due now gets another cycle at once."""
    clock = ManualClock()
    store, service = _service(clock=clock)
    dispatcher, plans = _counting_dispatcher(store, clock)
    plan = dispatcher._plan

    def plan_racing_a_create():
        next_at = plan()
        if len(plans) == 1:  # the insert lands after this cycle read the queue
            dispatcher.wake(due=clock.now())
        return next_at

    dispatcher._plan = plan_racing_a_create  # type: ignore[method-assign]
    dispatcher.start()
    try:
        wait_for(lambda: len(plans) >= 2, message="a second plan cycle without the clock moving")
        assert plans[0] == plans[1]
    finally:
        dispatcher.stop()
        store.close()
