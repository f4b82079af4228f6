"""A tiny in-memory stand-in for CloudTasksService, to test the REST adapter in isolation.

It knows nothing of the real rules: it only proves that requests arrive decoded (path, body, query)
and that answers and ApiErrors are encoded. Semantics are tested against the real emulator.
"""
from __future__ import annotations

import threading
from typing import Any

import grpc
from google.protobuf import empty_pb2

from cloudtasks_emulator.core.errors import ApiError
from cloudtasks_emulator.core.faults import FaultInjector
from cloudtasks_emulator.core.methods import METHODS


class FakeService:
    def __init__(self, faults: FaultInjector | None = None) -> None:
        self.queues: dict[str, Any] = {}
        self.tasks: dict[str, Any] = {}
        self.calls: list[tuple[str, Any]] = []
        self.faults = faults
        self.raise_next: Exception | None = None
        self._lock = threading.Lock()

    def invoke(self, method_name: str, request: Any) -> Any:
        if self.faults is not None:
            self.faults.before_call(method_name)
        with self._lock:
            self.calls.append((method_name, request))
            if self.raise_next is not None:
                exc, self.raise_next = self.raise_next, None
                raise exc
            response = getattr(self, "_" + METHODS[method_name].python_name)(request)
        if self.faults is not None:
            self.faults.after_commit(method_name)
        return response

    def _queue(self, name: str) -> Any:
        if name not in self.queues:
            raise ApiError(grpc.StatusCode.NOT_FOUND, f"Queue {name} does not exist.")
        return self.queues[name]

    def _create_queue(self, req: Any) -> Any:
        if req.queue.name in self.queues:
            raise ApiError(grpc.StatusCode.ALREADY_EXISTS, "Queue already exists")
        q = METHODS["GetQueue"].response()
        q.CopyFrom(req.queue)
        q.state = 1
        self.queues[q.name] = q
        return q

    def _get_queue(self, req: Any) -> Any:
        return self._queue(req.name)

    def _list_queues(self, req: Any) -> Any:
        resp = METHODS["ListQueues"].response()
        resp.queues.extend(q for n, q in sorted(self.queues.items()) if n.startswith(req.parent + "/"))
        return resp

    def _update_queue(self, req: Any) -> Any:
        q = self.queues.setdefault(req.queue.name, METHODS["GetQueue"].response(name=req.queue.name))
        q.MergeFrom(req.queue)
        return q

    def _delete_queue(self, req: Any) -> Any:
        self._queue(req.name)
        del self.queues[req.name]
        return empty_pb2.Empty()

    def _set_state(self, name: str, state: int) -> Any:
        q = self._queue(name)
        q.state = state
        return q

    def _purge_queue(self, req: Any) -> Any:
        return self._queue(req.name)

    def _pause_queue(self, req: Any) -> Any:
        return self._set_state(req.name, 2)

    def _resume_queue(self, req: Any) -> Any:
        return self._set_state(req.name, 1)

    def _get_iam_policy(self, req: Any) -> Any:
        return METHODS["GetIamPolicy"].response(version=1, etag=b"\x00\x01")

    def _set_iam_policy(self, req: Any) -> Any:
        return req.policy

    def _test_iam_permissions(self, req: Any) -> Any:
        return METHODS["TestIamPermissions"].response(permissions=list(req.permissions))

    def _create_task(self, req: Any) -> Any:
        self._queue(req.parent)
        t = METHODS["GetTask"].response()
        t.CopyFrom(req.task)
        if not t.name:
            t.name = f"{req.parent}/tasks/t{len(self.tasks) + 1}"
        if t.name in self.tasks:
            raise ApiError(grpc.StatusCode.ALREADY_EXISTS, "Requested entity already exists")
        t.view = req.response_view or 1
        self.tasks[t.name] = t
        return t

    def _get_task(self, req: Any) -> Any:
        if req.name not in self.tasks:
            raise ApiError(grpc.StatusCode.NOT_FOUND, "Requested entity was not found.")
        return self.tasks[req.name]

    def _list_tasks(self, req: Any) -> Any:
        resp = METHODS["ListTasks"].response()
        resp.tasks.extend(t for n, t in sorted(self.tasks.items()) if n.startswith(req.parent + "/"))
        return resp

    def _delete_task(self, req: Any) -> Any:
        self._get_task(req)
        del self.tasks[req.name]
        return empty_pb2.Empty()

    def _run_task(self, req: Any) -> Any:
        return self._get_task(req)
