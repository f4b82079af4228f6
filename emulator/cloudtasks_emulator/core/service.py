"""Every RPC of google.cloud.tasks.v2.CloudTasks on raw protobufs, over the store.

The adapters (gRPC, REST) call ``invoke(rpc_name, request)``; semantics live here and in ``rules``.
"""
from __future__ import annotations

import base64
import secrets
import threading
from typing import Any, Protocol

import grpc
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import empty_pb2

from . import messages as m
from . import rules
from .clock import Clock, SystemClock, to_datetime
from .errors import ApiError, already_exists, failed_precondition, invalid_argument, not_found
from .methods import METHODS
from .store import Store

QUEUE_MISSING = ("Queue does not exist. If you just created the queue, wait at least a minute for the "
                 "queue to initialize.")
TASK_RESERVED = ("The task cannot be created because a task with this name existed too recently. For more "
                 "information about task de-duplication see https://cloud.google.com/tasks/docs/reference/"
                 "rest/v2/projects.locations.queues.tasks/create#body.request_body.FIELDS.task.")
TASK_GONE = ("The task no longer exists, though a task with this name existed recently. The task either "
             "successfully completed or was deleted.")
QUEUE_RESERVED = "The queue cannot be created because a queue with this name existed too recently."
MAX_TASK_PAGE = 1000
MAX_QUEUE_PAGE = 9800
_TASK_OUTPUT_ONLY = ("create_time", "dispatch_count", "response_count", "first_attempt", "last_attempt", "view")


class Faults(Protocol):
    def before_call(self, method_name: str) -> None: ...
    def after_commit(self, method_name: str) -> None: ...


class Dispatch(Protocol):
    def wake(self, due: float | None = None) -> None: ...
    def run_now(self, name: str) -> Any: ...


class CloudTasksService:
    def __init__(self, store: Store, clock: Clock | None = None, *, faults: Faults | None = None,
                 name_reservation: float = rules.DEFAULT_NAME_RESERVATION_SECONDS,
                 auto_create_queues: bool = False, app_engine_host: str = "127.0.0.1:8080") -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.faults = faults
        self.name_reservation = name_reservation
        self.auto_create_queues = auto_create_queues
        self.app_engine_host = app_engine_host
        self.dispatcher: Dispatch | None = None  # set by the server once the dispatcher exists
        self._queue_lock = threading.Lock()  # read-modify-write of queue records
        self._valid_queue_names: set[str] = set()  # names rules.queue_name_error accepted
        self._implementations = {name: getattr(self, method.python_name) for name, method in METHODS.items()}

    def invoke(self, method_name: str, request: Any) -> Any:
        implementation = self._implementations.get(method_name)
        if implementation is None:
            raise ApiError(grpc.StatusCode.UNIMPLEMENTED, f"Method {method_name} is not implemented.")
        if self.faults is not None:
            self.faults.before_call(method_name)
        response = implementation(request)
        if self.faults is not None:
            self.faults.after_commit(method_name)
        return response

    def _now(self) -> float:
        return self.clock.now()

    def _wake(self, due: float | None = None) -> None:
        """Tell the dispatcher something changed; ``due``: only a task due then was added."""
        if self.dispatcher is not None:
            self.dispatcher.wake(due)

    # --- Queues ----------------------------------------------------------------------------------

    def list_queues(self, request: Any) -> Any:
        _check(rules.location_name_error(request.parent))
        if request.page_size < 0:
            raise invalid_argument("page_size must not be negative.")
        size = min(request.page_size or MAX_QUEUE_PAGE, MAX_QUEUE_PAGE)
        state = m.parse_state_filter(request.filter)
        after = _decode_token(request.page_token, "q")
        response = m.tasks_v2.ListQueuesResponse.pb()()
        while len(response.queues) <= size:
            batch = self.store.list_queues(request.parent, after, size + 1)
            if not batch:
                break
            after = batch[-1].name
            response.queues.extend(q for q in batch if state is None or q.state == state)
        if len(response.queues) > size:
            del response.queues[size:]
            response.next_page_token = _encode_token("q", response.queues[-1].name)
        return response

    def get_queue(self, request: Any) -> Any:
        return self._queue(request.name)

    def _queue(self, name: str) -> Any:
        _check(rules.queue_name_error(name))
        queue = self.store.get_queue(name)
        if queue is None:
            raise not_found()
        return queue

    def create_queue(self, request: Any) -> Any:
        _check(rules.location_name_error(request.parent))
        queue = m.Queue()
        queue.CopyFrom(request.queue)
        _check(rules.queue_name_error(queue.name))
        if not queue.name.startswith(request.parent + "/queues/"):
            raise invalid_argument(f"The queue name ('{queue.name}') must be in the location of the request "
                                   f"('{request.parent}').")
        _check_violations(m.queue_violations(queue))
        # Output-only fields are ignored; a new queue always starts RUNNING.
        queue.ClearField("purge_time")
        queue.state = m.QUEUE_STATE.Value("RUNNING")
        m.fill_queue_defaults(queue)
        outcome = self.store.create_queue(queue, self._now())
        if outcome == "exists":
            raise already_exists("Queue already exists")
        if outcome == "reserved":
            raise failed_precondition(QUEUE_RESERVED)
        return queue

    def update_queue(self, request: Any) -> Any:
        name = request.queue.name
        _check(rules.queue_name_error(name))
        _check_violations(m.queue_violations(request.queue))
        with self._queue_lock:
            existing = self.store.get_queue(name)
            if existing is None:  # UpdateQueue creates a missing queue
                existing = m.Queue(name=name, state=m.QUEUE_STATE.Value("RUNNING"))
            queue = m.apply_queue_update(existing, request.queue, request.update_mask)
            m.fill_queue_defaults(queue)
            self.store.put_queue(queue)
        self._wake()
        return queue

    def delete_queue(self, request: Any) -> Any:
        _check(rules.queue_name_error(request.name))
        if not self.store.delete_queue(request.name, self._now() + self.name_reservation):
            raise not_found()
        self._wake()
        return empty_pb2.Empty()

    def purge_queue(self, request: Any) -> Any:
        with self._queue_lock:
            queue = self._queue(request.name)
            now = self._now()
            queue.purge_time.CopyFrom(m.timestamp(now, 1000))
            self.store.purge(queue, now, now + self.name_reservation)
        return queue

    def pause_queue(self, request: Any) -> Any:
        return self._set_state(request.name, "PAUSED")

    def resume_queue(self, request: Any) -> Any:
        return self._set_state(request.name, "RUNNING")

    def _set_state(self, name: str, state: str) -> Any:
        with self._queue_lock:
            queue = self._queue(name)
            queue.state = m.QUEUE_STATE.Value(state)
            self.store.put_queue(queue)
        self._wake()
        return queue

    def _ensure_queue(self, name: str) -> Any:
        """The queue; NOT_FOUND when missing, unless the emulator auto-creates queues."""
        queue = self.store.get_queue(name)
        if queue is not None:
            return queue
        if not self.auto_create_queues:
            raise not_found(QUEUE_MISSING)
        queue = m.Queue(name=name)
        m.fill_queue_defaults(queue)
        self.store.create_queue(queue, float("-inf"))  # auto-creation ignores the reservation
        return queue

    # --- IAM (stored, never enforced) --------------------------------------------------------------

    def get_iam_policy(self, request: Any) -> Any:
        self._queue(request.resource)
        data = self.store.get_iam(request.resource)
        return policy_pb2.Policy.FromString(data) if data else policy_pb2.Policy(etag=b"ACAB")

    def set_iam_policy(self, request: Any) -> Any:
        with self._queue_lock:
            current = self.get_iam_policy(request)
            if request.policy.etag and request.policy.etag != current.etag:
                raise ApiError(grpc.StatusCode.ABORTED, "There were concurrent policy changes. Please retry the "
                               "whole read-modify-write with exponential backoff.")
            policy = policy_pb2.Policy()
            policy.CopyFrom(request.policy)
            policy.etag = base64.b64encode(secrets.token_bytes(6))
            self.store.put_iam(request.resource, policy.SerializeToString())
        return policy

    def test_iam_permissions(self, request: Any) -> Any:
        self._queue(request.resource)
        return iam_policy_pb2.TestIamPermissionsResponse(permissions=list(request.permissions))

    # --- Tasks -----------------------------------------------------------------------------------

    def list_tasks(self, request: Any) -> Any:
        _check(rules.queue_name_error(request.parent))
        m.check_view(request.response_view)
        if not 0 <= request.page_size <= MAX_TASK_PAGE:
            raise invalid_argument(f"page_size must be between 0 and {MAX_TASK_PAGE}, got {request.page_size}.")
        self._ensure_queue(request.parent)
        size = request.page_size or MAX_TASK_PAGE
        tasks = self.store.list_tasks(request.parent, _decode_token(request.page_token, "t"), size + 1)
        response = m.tasks_v2.ListTasksResponse.pb()()
        response.tasks.extend(m.with_view(t, request.response_view) for t in tasks[:size])
        if len(tasks) > size:
            response.next_page_token = _encode_token("t", tasks[size - 1].name)
        return response

    def get_task(self, request: Any) -> Any:
        m.check_view(request.response_view)
        return m.with_view(self._task(request.name), request.response_view)

    def _task(self, name: str) -> Any:
        _check(rules.task_name_error(name))
        task = self.store.get_task(name)
        if task is None:
            self._raise_gone(name)
        return task

    def _raise_gone(self, name: str) -> None:
        raise not_found(TASK_GONE if self.store.reserved(name, self._now()) else "Requested entity was not found.")

    def _queue_name_error(self, name: str) -> str | None:
        """``rules.queue_name_error``, remembering the (few) valid queue names already seen."""
        if name in self._valid_queue_names:
            return None
        error = rules.queue_name_error(name)
        if error is None:
            if len(self._valid_queue_names) >= 4096:
                self._valid_queue_names.clear()
            self._valid_queue_names.add(name)
        return error

    def create_task(self, request: Any) -> Any:
        parent = request.parent
        _check(self._queue_name_error(parent))
        m.check_view(request.response_view)
        task = request.task  # the request is ours: completed in place, stored, and returned
        if task.name:
            _check(rules.task_name_error(task.name, parent))
        else:
            # Like the service: a long random decimal ID, which also spreads load.
            task.name = f"{parent}/tasks/{secrets.randbelow(10**19) + 10**19}"
        if rules.task_size_error(task.ByteSize()):
            raise invalid_argument(rules.TASK_SIZE_MESSAGE)
        now = self._now()
        if task.HasField("schedule_time") or task.HasField("dispatch_deadline"):
            _check_violations(m.value_violations(task, ("schedule_time", "dispatch_deadline")))
        _check_violations(rules.validate_task(m.rule_view(task), to_datetime(now)))
        for field in _TASK_OUTPUT_ONLY:
            task.ClearField(field)  # output-only
        app_engine = task.HasField("app_engine_http_request")
        app_engine_host = self.app_engine_host

        def prepare(queue: Any) -> float:
            if queue is not None and queue.HasField("app_engine_routing_override"):
                task.app_engine_http_request.app_engine_routing.CopyFrom(queue.app_engine_routing_override)
            m.fill_task_defaults(task, now, app_engine_host)
            return m.epoch(task.schedule_time)

        auto_queue = None
        if self.auto_create_queues:
            auto_queue = m.Queue(name=parent)
            m.fill_queue_defaults(auto_queue)
        # One store transaction: queue check (+ its routing override, + auto-creation), name checks, insert.
        outcome = self.store.create_task(task, parent, now, now, prepare=prepare, with_queue=app_engine,
                                         auto_queue=auto_queue)
        if outcome is not None:
            if outcome == "no-queue":
                raise not_found(QUEUE_MISSING)
            if outcome == "exists":
                raise already_exists()
            if outcome == "reserved":
                raise already_exists(TASK_RESERVED)
        self._wake(m.epoch(task.schedule_time))
        # The stored task is no longer needed: the reply is the task itself, in the requested view.
        return m.apply_view(task, request.response_view)

    def delete_task(self, request: Any) -> Any:
        _check(rules.task_name_error(request.name))
        if not self.store.delete_task(request.name, self._now() + self.name_reservation):
            self._raise_gone(request.name)
        return empty_pb2.Empty()

    def run_task(self, request: Any) -> Any:
        _check(rules.task_name_error(request.name))
        m.check_view(request.response_view)
        if self.dispatcher is None:
            raise ApiError(grpc.StatusCode.UNAVAILABLE, "The emulator's dispatcher is not running.")
        task = self.dispatcher.run_now(request.name)
        if task is None:
            self._raise_gone(request.name)
        return m.with_view(task, request.response_view)


def _check(error: str | None) -> None:
    if error:
        raise invalid_argument(error)


def _check_violations(violations: list[rules.Violation]) -> None:
    if violations:
        raise invalid_argument(violations[0].message)


def _encode_token(kind: str, last_name: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last_name}".encode()).decode()


def _decode_token(token: str, kind: str) -> str:
    """The name after which a page starts ("" for the first page)."""
    if not token:
        return ""
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeError):
        text = ""
    if not text.startswith(kind + ":"):
        raise invalid_argument("page_token: the page token is invalid.")
    return text[len(kind) + 1:]
