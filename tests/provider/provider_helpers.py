"""Shared helpers of the provider tests."""
from __future__ import annotations

import copy
from typing import Any


QUEUE = "projects/proj-1/locations/us-central1/queues/jobs"


def http_props(**overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "queue": QUEUE,
        "http_request": {"url": "https://api.example.com/reindex", "http_method": "POST",
                         "headers": {"Content-Type": "application/json"}, "body": '{"full": true}'},
    }
    for key, value in overrides.items():
        if key in ("url", "http_method", "headers", "body", "oauth_token", "oidc_token", "body_base64"):
            props["http_request"][key] = value
        else:
            props[key] = value
    return copy.deepcopy(props)




# --- a minimal in-process Cloud Tasks gRPC fake (Create/Get/Delete), with fault injection --------
# The protocol tests use it so they do not depend on the emulator; the emulator tests cover the
# service's real behaviour.
import threading  # noqa: E402
from concurrent import futures  # noqa: E402

import grpc  # noqa: E402
from google.cloud import tasks_v2  # noqa: E402
from google.protobuf import empty_pb2, timestamp_pb2  # noqa: E402

TaskPb = tasks_v2.Task.pb()


class FakeCloudTasks:
    def __init__(self) -> None:
        self.tasks: dict[str, Any] = {}
        self.reserved: set[str] = set()
        self.calls: list[str] = []
        self.lose_next_create_reply = False
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb = lambda t: t.pb()  # noqa: E731
        handlers = {
            "CreateTask": (self._create, pb(tasks_v2.CreateTaskRequest), TaskPb),
            "GetTask": (self._get, pb(tasks_v2.GetTaskRequest), TaskPb),
            "DeleteTask": (self._delete, pb(tasks_v2.DeleteTaskRequest), empty_pb2.Empty),
        }
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "google.cloud.tasks.v2.CloudTasks",
            {name: grpc.unary_unary_rpc_method_handler(fn, request_deserializer=req.FromString,
                                                       response_serializer=resp.SerializeToString)
             for name, (fn, req, resp) in handlers.items()})])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{self.port}"
        self.server.start()

    def _create(self, request, context):
        with self.lock:
            self.calls.append("CreateTask")
            task = TaskPb()
            task.CopyFrom(request.task)
            if task.name in self.tasks or task.name in self.reserved:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, "Requested entity already exists")
            task.create_time.FromSeconds(int(__import__("time").time()))
            if not task.HasField("schedule_time"):
                task.schedule_time.CopyFrom(task.create_time)
            task.view = request.response_view or 1
            self.tasks[task.name] = task
            if self.lose_next_create_reply:
                self.lose_next_create_reply = False
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset (injected)")
            return task

    def _get(self, request, context):
        with self.lock:
            self.calls.append("GetTask")
            if request.name not in self.tasks:
                context.abort(grpc.StatusCode.NOT_FOUND, "Requested entity was not found.")
            task = TaskPb()
            task.CopyFrom(self.tasks[request.name])
            task.view = request.response_view or 1
            if task.view != 2:
                task.http_request.ClearField("body")
            return task

    def _delete(self, request, context):
        with self.lock:
            self.calls.append("DeleteTask")
            if request.name not in self.tasks:
                context.abort(grpc.StatusCode.NOT_FOUND, "Requested entity was not found.")
            del self.tasks[request.name]
            self.reserved.add(request.name)
            return empty_pb2.Empty()

    def attempt(self, name: str, code: int = 200, succeed: bool = True) -> None:
        """Record one dispatch of ``name``; a success removes it from the queue, as the service does."""
        with self.lock:
            task = self.tasks[name]
            now = timestamp_pb2.Timestamp()
            now.GetCurrentTime()
            task.dispatch_count += 1
            task.response_count += 1
            if not task.HasField("first_attempt"):
                task.first_attempt.dispatch_time.CopyFrom(now)
            task.last_attempt.dispatch_time.CopyFrom(now)
            task.last_attempt.response_time.CopyFrom(now)
            task.last_attempt.response_status.code = 0 if code < 300 else 13
            if succeed:
                del self.tasks[name]
                self.reserved.add(name)

    def stop(self) -> None:
        self.server.stop(0)
