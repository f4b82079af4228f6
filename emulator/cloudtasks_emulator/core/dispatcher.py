"""Real dispatch of tasks to their targets.

One scheduler thread sleeps on a condition until the next task is due (or a token comes back, or
something changes): an idle emulator uses no CPU. Per queue it honours a token bucket
(max_dispatches_per_second refilled up to max_burst_size) and max_concurrent_dispatches at once,
and hands claimed tasks to a bounded pool of worker threads so attempts run concurrently.
Outcomes are recorded by the workers: success or permanent failure deletes the task and reserves
its name in one transaction; any other result reschedules it per the queue's RetryConfig.
"""
from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any

from google.rpc import status_pb2

from . import delivery
from . import messages as m
from . import rules
from ..handler_pool import HandlerPool
from .clock import Clock
from .store import Claim, Store

log = logging.getLogger("cloudtasks_emulator.dispatch")

MIN_TICK = 0.01  # when waiting for tokens, wake at most this often (batches dispatches at high rates)
RUNNING = m.QUEUE_STATE.Value("RUNNING")


class _Bucket:
    def __init__(self, tokens: float, now: float) -> None:
        self.tokens = tokens
        self.updated = now

    def refill(self, now: float, rate: float, burst: int) -> None:
        self.tokens = min(float(burst), self.tokens + max(0.0, now - self.updated) * rate)
        self.updated = now


class Dispatcher:
    def __init__(self, store: Store, clock: Clock, *, oidc: Any | None = None,
                 app_engine_url: str = "http://127.0.0.1:8080", workers: int = 100,
                 name_reservation: float = rules.DEFAULT_NAME_RESERVATION_SECONDS) -> None:
        self.store = store
        self.clock = clock
        self.authorizer = delivery.Authorizer(oidc)
        self.app_engine_url = app_engine_url
        self.name_reservation = name_reservation
        # Attempts mostly wait on the network: ``workers`` of them may be in flight at once.
        self._pool = HandlerPool(runnable=workers, max_threads=workers, name="cloudtasks-dispatch")
        self._cond = threading.Condition()
        self._dirty = False
        # When the scheduler will look again on its own (clock seconds; inf: not until woken); None
        # while it is planning. Guarded by _cond.
        self._wake_at: float | None = None
        self._new_due: float | None = None  # earliest task added while planning; guarded by _cond
        self._running = False
        self._thread: threading.Thread | None = None
        self._buckets: dict[str, _Bucket] = {}
        self._inflight: dict[str, int] = defaultdict(int)
        self._inflight_lock = threading.Lock()

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="cloudtasks-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False)  # daemon threads: a hanging target never blocks exit

    def wake(self, due: float | None = None) -> None:
        """Something changed (a task, a queue, a finished attempt): re-plan now. ``due``: the only
        change is a new task due then (committed before this call); that needs no re-plan, only an
        earlier wake-up when the scheduler would otherwise look again later."""
        with self._cond:
            if due is None:
                self._dirty = True
                self._cond.notify_all()
            elif self._wake_at is None:  # planning: the cycle may have missed it; look at it after
                self._new_due = due if self._new_due is None else min(self._new_due, due)
            elif due < self._wake_at:
                self._wake_at = due
                self._cond.notify_all()

    def inflight(self, queue: str) -> int:
        with self._inflight_lock:
            return self._inflight[queue]

    def run_now(self, name: str) -> Any:
        """RunTask: dispatch ``name`` now whatever the queue's state and limits; the task as dispatched
        (None when it does not exist). A task already in flight is not dispatched a second time."""
        claim = self.store.claim(name, m.timestamp(self.clock.now(), 1000))
        if claim is None:
            return None
        if isinstance(claim, str):
            return self.store.get_task(name)
        self._start(claim)
        return claim.task

    # --- Scheduling ------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._running:
                    return
                self._dirty = False
                self._wake_at = None  # planning: wakes are collected in _new_due meanwhile
                self._new_due = None
            try:
                next_at = self._plan()
            except Exception:  # e.g. the database closed under us at shutdown; retry shortly
                log.exception("scheduler cycle failed")
                next_at = self.clock.now() + 1.0
            with self._cond:
                if self._new_due is not None:
                    next_at = self._new_due if next_at is None else min(next_at, self._new_due)
                self._wake_at = float("inf") if next_at is None else next_at
                # Sleep until the wake-up time (which wake() may bring forward) or a change.
                while self._running and not self._dirty and (now := self.clock.now()) < self._wake_at:
                    self.clock.wait(self._cond, None if self._wake_at == float("inf") else self._wake_at - now)
                if not self._running:
                    return

    def _plan(self) -> float | None:
        """Dispatch what may go now; the clock time of the next reason to look again (None: none).
        Reads first: the claiming write transaction runs only when a task is due and may go."""
        now = self.clock.now()
        next_at: float | None = None
        queues = self.store.all_queues()
        self._buckets = {q.name: self._buckets[q.name] for q in queues if q.name in self._buckets}
        for queue in queues:
            if queue.state != RUNNING:
                continue
            limits = queue.rate_limits
            bucket = self._buckets.setdefault(queue.name, _Bucket(limits.max_burst_size, now))
            bucket.refill(now, limits.max_dispatches_per_second, limits.max_burst_size)
            free = limits.max_concurrent_dispatches - self.inflight(queue.name)
            if free <= 0:
                continue  # a finishing attempt wakes the scheduler
            due = self.store.next_due(queue.name)
            claims = []
            if due is not None and due <= now and (wanted := min(int(bucket.tokens), free)) > 0:
                claims = self.store.claim_due(queue.name, now, wanted, m.timestamp(now, 1000))
                bucket.tokens -= len(claims)
                for claim in claims:
                    self._start(claim)
            if free - len(claims) <= 0:
                continue  # a finishing attempt wakes the scheduler
            if claims:
                due = self.store.next_due(queue.name)
            if due is None:
                continue
            if due <= now:  # due, but the bucket is empty
                due = now + max((1.0 - bucket.tokens) / limits.max_dispatches_per_second, MIN_TICK)
            next_at = due if next_at is None else min(next_at, due)
        return next_at

    def _start(self, claim: Claim) -> None:
        with self._inflight_lock:
            self._inflight[claim.queue] += 1
        self._pool.submit(self._attempt_logged, claim)

    # --- One attempt -----------------------------------------------------------------------------

    def _attempt_logged(self, claim: Claim) -> None:
        try:
            self._attempt(claim)
        except Exception:  # a bug in one attempt must cost that attempt only, and be seen
            log.exception("dispatch attempt failed")

    def _attempt(self, claim: Claim) -> None:
        try:
            prepared = delivery.prepare(claim, self.authorizer, self.app_engine_url)
            # The claim time is when the rate limits let the attempt go (what they constrain).
            log.info("dispatch %s; queue %s claimed at %.6f", delivery.redacted(prepared), claim.queue,
                     m.epoch(claim.dispatch_time))
            outcome = delivery.send(prepared)
            log.info("task %s: %s", claim.name, outcome.status if outcome.status is not None else outcome.error)
            if self._running:  # after stop() the store may be closed: the attempt reruns at restart
                self._record(claim, outcome)
        finally:
            with self._inflight_lock:
                self._inflight[claim.queue] -= 1
            self.wake()

    def _record(self, claim: Claim, outcome: delivery.Outcome) -> None:
        now = self.clock.now()
        task = claim.task
        app_engine = task.HasField("app_engine_http_request")
        if outcome.status is not None:
            task.response_count += 1
        code, message = outcome.rpc_status()
        attempt = task.last_attempt
        attempt.Clear()
        attempt.schedule_time.CopyFrom(task.schedule_time)
        attempt.dispatch_time.CopyFrom(claim.dispatch_time)
        if outcome.status is not None:
            attempt.response_time.CopyFrom(m.timestamp(now, 1000))
        attempt.response_status.CopyFrom(status_pb2.Status(code=code, message=message))
        queue = self.store.get_queue(claim.queue)
        if outcome.success or queue is None or self._exhausted(task, queue.retry_config, now):
            if not outcome.success:
                log.info("task %s failed permanently after %d attempts", claim.name, task.dispatch_count)
            self.store.finish(claim, task, done=True, reserve_until=now + self.name_reservation)
            return
        retry = queue.retry_config
        delay = rules.retry_delay(task.dispatch_count, m.seconds(retry.min_backoff), m.seconds(retry.max_backoff),
                                  retry.max_doublings)
        if outcome.status in (429, 503) and outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
        task.schedule_time.CopyFrom(m.timestamp(now + delay, 1000))
        responded = outcome.status is not None
        # HTTP targets count only non-5xx answers as executions; App Engine counts every answer.
        executed = responded and (app_engine or outcome.status < 500)  # type: ignore[operator]
        if responded:
            previous = str(outcome.status)
        elif app_engine:
            previous = "0"
        else:
            previous = "504" if outcome.timed_out else "502"
        self.store.finish(claim, task, done=False, schedule=m.epoch(task.schedule_time),
                          exec_count=claim.exec_count + int(bool(executed)), prev_response=previous,
                          retry_reason="App Error" if responded else "Instance Unavailable")

    @staticmethod
    def _exhausted(task: Any, retry: Any, now: float) -> bool:
        """Retries stop only once both max_attempts (-1: unlimited) and max_retry_duration (0:
        unlimited) are used up; a limit that is unlimited never ends retries on its own."""
        max_attempts, max_duration = retry.max_attempts, m.seconds(retry.max_retry_duration)
        if max_attempts == -1 and max_duration == 0:
            return False
        attempts_used = max_attempts == -1 or task.dispatch_count >= max_attempts
        elapsed = now - m.epoch(task.first_attempt.dispatch_time)
        duration_used = max_duration == 0 or elapsed >= max_duration
        return attempts_used and duration_used
