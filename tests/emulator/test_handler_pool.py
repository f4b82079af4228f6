"""The gRPC handler pool: few handlers compute at once, a waiting one gives its slot away."""
from __future__ import annotations

import threading

import pytest
from google.cloud import tasks_v2

from cloudtasks_emulator import handler_pool
from cloudtasks_emulator.core.faults import FaultInjector, parse_spec
from cloudtasks_emulator.core.methods import METHODS
from cloudtasks_emulator.handler_pool import HandlerPool
from cloudtasks_emulator.testing import make_client, run_emulator
from pulumi_cloudtasks.testing import wait_for

QUEUE = "projects/p/locations/l/queues/pool"


def _gated_calls(pool: HandlerPool, count: int, *, waiting: bool):
    """``count`` calls that hold until ``gate`` is set (inside ``blocking()`` when ``waiting``)."""
    gate = threading.Event()
    started: list[int] = []

    def call(i: int) -> int:
        started.append(i)
        if waiting:
            with handler_pool.blocking():
                gate.wait(30)
        else:
            gate.wait(30)
        return i

    return gate, started, [pool.submit(call, i) for i in range(count)]


def test_no_more_than_runnable_calls_compute_at_once():
    pool = HandlerPool(runnable=2)
    gate, started, futures = _gated_calls(pool, 5, waiting=False)
    try:
        wait_for(lambda: len(started) == 2, timeout=10, message="two calls running")
        with pool._cond:
            assert len(pool._calls) == 3 and pool._active == 2
    finally:
        gate.set()
    assert [f.result(timeout=10) for f in futures] == [0, 1, 2, 3, 4]
    pool.shutdown()


def test_a_waiting_call_gives_its_slot_to_a_queued_one():
    pool = HandlerPool(runnable=2)
    gate, started, futures = _gated_calls(pool, 4, waiting=True)
    try:
        wait_for(lambda: len(started) == 4, timeout=10, message="all four calls started while the first ones wait")
        assert pool.submit(lambda: "quick").result(timeout=10) == "quick"
    finally:
        gate.set()
    assert [f.result(timeout=10) for f in futures] == [0, 1, 2, 3]
    pool.shutdown()


def test_results_and_exceptions_reach_the_futures_and_shutdown_refuses_new_calls():
    pool = HandlerPool(runnable=1)

    def fail() -> None:
        raise ValueError("boom")

    assert pool.submit(lambda a, b=0: a + b, 2, b=3).result(timeout=10) == 5
    with pytest.raises(ValueError, match="boom"):
        pool.submit(fail).result(timeout=10)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)


def test_blocking_frees_the_slot_of_the_pool_running_the_thread_and_nothing_elsewhere():
    pool = HandlerPool(runnable=1)
    active: list[int] = []

    def call() -> None:
        with handler_pool.blocking():
            with pool._cond:
                active.append(pool._active)
        with pool._cond:
            active.append(pool._active)

    pool.submit(call).result(timeout=10)
    assert active == [0, 1]
    with handler_pool.blocking():  # not a pool thread: no slot to give, no error
        assert getattr(handler_pool._current, "pool", None) is None
    pool.shutdown()


def test_calls_delayed_by_an_injected_latency_do_not_hold_up_other_rpcs():
    """More slow CreateTasks than handler slots are in flight, yet GetQueue answers meanwhile."""
    gate = threading.Event()
    waiting: list[float] = []

    def gated_sleep(seconds: float) -> None:
        with handler_pool.blocking():
            waiting.append(seconds)
            gate.wait(30)

    faults = FaultInjector(parse_spec("CreateTask:latency=5", set(METHODS)), sleep=gated_sleep)
    with run_emulator(queues=[QUEUE], faults=faults, http_port=None) as emu:
        client = make_client(emu.grpc_target)
        task = tasks_v2.Task(http_request=tasks_v2.HttpRequest(url="https://worker.invalid/x"))
        slow = [threading.Thread(target=client.create_task, kwargs={"parent": QUEUE, "task": task}, daemon=True)
                for _ in range(4)]
        for thread in slow:
            thread.start()
        try:
            wait_for(lambda: len(waiting) == 4, timeout=20, message="four CreateTasks waiting in the fault")
            assert client.get_queue(name=QUEUE, timeout=10).name == QUEUE
        finally:
            gate.set()
        for thread in slow:
            thread.join(timeout=20)
        assert len(list(client.list_tasks(parent=QUEUE))) == 4
