"""The threads that run gRPC handlers: few at once, more only while some wait.

The core is GIL-bound Python behind one store: threads beyond two or so computing at the same time
only hand the GIL back and forth (each hand-off a context switch), which costs more than they add.
So at most ``runnable`` handlers compute at once. A handler that is about to wait rather than compute
(an injected latency fault) says so with ``blocking()``; while it waits, another thread may take a
queued call, so a slow call never holds up the others. Threads above ``runnable`` retire when idle.

The dispatcher runs its attempts on one too, with ``runnable`` = its worker count: attempts mostly wait
on the network, so there the limit is how many may be in flight.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import Any, Callable, Iterator

DEFAULT_RUNNABLE = 2
DEFAULT_MAX_THREADS = 256
IDLE_RETIRE_SECONDS = 30.0

_current = threading.local()  # .pool: the HandlerPool whose worker this thread is


class HandlerPool(Executor):
    def __init__(self, runnable: int = DEFAULT_RUNNABLE, max_threads: int = DEFAULT_MAX_THREADS,
                 name: str = "grpc-handler") -> None:
        if runnable < 1 or max_threads < runnable:
            raise ValueError("HandlerPool needs 1 <= runnable <= max_threads")
        self.runnable = runnable
        self.max_threads = max_threads
        self._name = name
        self._cond = threading.Condition()
        self._calls: deque[tuple[Future, Callable[..., Any], tuple, dict]] = deque()
        self._threads: set[threading.Thread] = set()
        self._active = 0  # running a call and not inside blocking()
        self._idle = 0  # waiting for a call
        self._starting = 0  # started, not yet looking for a call
        self._shutdown = False
        self._serial = 0

    # --- Executor ----------------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        with self._cond:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._calls.append((future, fn, args, kwargs))
            self._make_room()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._shutdown = True
            if cancel_futures:
                while self._calls:
                    self._calls.popleft()[0].cancel()
            self._cond.notify_all()
            threads = list(self._threads)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    # --- Waiting handlers ----------------------------------------------------------------------------

    @contextmanager
    def blocking(self) -> Iterator[None]:
        """Around a wait in a handler: its computing slot goes to a queued call meanwhile."""
        with self._cond:
            self._active -= 1
            self._make_room()
        try:
            yield
        finally:
            with self._cond:
                self._active += 1

    # --- Workers -------------------------------------------------------------------------------------

    def _make_room(self) -> None:
        """With the lock held: get queued calls going while computing slots are free."""
        wanted = min(len(self._calls), self.runnable - self._active) - self._starting
        if wanted <= 0:
            return
        if self._idle:
            self._cond.notify(wanted)
        for _ in range(min(wanted - self._idle, self.max_threads - len(self._threads))):
            self._serial += 1
            thread = threading.Thread(target=self._work, name=f"{self._name}-{self._serial}", daemon=True)
            self._threads.add(thread)
            self._starting += 1
            thread.start()

    def _next_call(self) -> tuple[Future, Callable[..., Any], tuple, dict] | None:
        """Wait for a call this thread may run (None: retire). Lock held."""
        idle_since = time.monotonic()
        while not (self._calls and self._active < self.runnable):
            if self._shutdown and not self._calls:
                return None
            if len(self._threads) > self.runnable and time.monotonic() - idle_since >= IDLE_RETIRE_SECONDS:
                return None
            self._idle += 1
            try:
                self._cond.wait(IDLE_RETIRE_SECONDS)
            finally:
                self._idle -= 1
        self._active += 1
        return self._calls.popleft()

    def _work(self) -> None:
        _current.pool = self
        with self._cond:
            self._starting -= 1
        try:
            while True:
                with self._cond:
                    call = self._next_call()
                    if call is None:
                        return
                future, fn, args, kwargs = call
                try:
                    if future.set_running_or_notify_cancel():
                        try:
                            future.set_result(fn(*args, **kwargs))
                        except BaseException as exc:
                            future.set_exception(exc)
                finally:
                    del future, fn, args, kwargs, call  # no reference kept while idle
                    with self._cond:
                        self._active -= 1
                        self._make_room()
        finally:
            with self._cond:
                self._threads.discard(threading.current_thread())


@contextmanager
def blocking() -> Iterator[None]:
    """``HandlerPool.blocking()`` of the pool running this thread; nothing elsewhere."""
    pool = getattr(_current, "pool", None)
    if pool is None:
        yield
        return
    with pool.blocking():
        yield


def sleep(seconds: float) -> None:
    """``time.sleep`` that, on a HandlerPool worker, lets another handler run meanwhile."""
    with blocking():
        time.sleep(seconds)
