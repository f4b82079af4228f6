"""The google-cloud-tasks client: built lazily, once per process and target, never pickled.

Target: the emulator when ``CLOUD_TASKS_EMULATOR_HOST`` is set (it wins: a process-level override,
as for other Google emulators) or stack config ``cloudtasks:emulatorHost`` was captured by the
provider's ``configure`` (``set_emulator_host``); otherwise real Cloud Tasks through Application
Default Credentials. The emulator gets an insecure channel and no credentials at all.

Idempotent calls (get/delete/list) retry UNAVAILABLE and DEADLINE_EXCEEDED with exponential backoff
within an overall deadline. ``create_task`` retries too: callers always set the task name, so a
retry after a lost reply ends in ALREADY_EXISTS, which the provider resolves by adoption.
"""
from __future__ import annotations

import os
import threading
from typing import Any

import grpc
from google.api_core import exceptions, retry as retries
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

EMULATOR_ENV = "CLOUD_TASKS_EMULATOR_HOST"
CONFIG_KEY = "cloudtasks:emulatorHost"
RETRY_DEADLINE_SECONDS = 60.0
CALL_TIMEOUT_SECONDS = 30.0

_lock = threading.Lock()
_clients: dict[str, tasks_v2.CloudTasksClient] = {}  # keyed by target ("" = Google via ADC)
_config_emulator_host: str | None = None  # module-level, so it never lands in the pickled provider


def set_emulator_host(host: str | None) -> None:
    """Record the stack's ``cloudtasks:emulatorHost`` (called from the provider's ``configure``)."""
    global _config_emulator_host
    _config_emulator_host = (host or "").strip() or None


def emulator_host() -> str | None:
    """The emulator's ``host:port``, or None for real Cloud Tasks."""
    host = os.environ.get(EMULATOR_ENV, "").strip() or _config_emulator_host
    if not host:
        return None
    for scheme in ("http://", "https://", "grpc://"):  # people paste URLs; gRPC wants host:port
        host = host.removeprefix(scheme)
    return host.rstrip("/")


def make_client(host: str | None) -> tasks_v2.CloudTasksClient:
    """A new client for ``host`` (emulator) or Google (None). Prefer ``get_client``."""
    if host:
        channel = grpc.insecure_channel(host)
        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    return tasks_v2.CloudTasksClient()  # Application Default Credentials


def get_client(host: str | None = None) -> tasks_v2.CloudTasksClient:
    """The process-wide client for ``host`` (default: ``emulator_host()``)."""
    key = host if host is not None else (emulator_host() or "")
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = make_client(key or None)
    return client


def retry_policy(deadline: float = RETRY_DEADLINE_SECONDS) -> retries.Retry:
    """Backoff 0.2s → 5s (×2, jittered) on UNAVAILABLE/DEADLINE_EXCEEDED, for at most ``deadline``."""
    return retries.Retry(
        predicate=retries.if_exception_type(exceptions.ServiceUnavailable, exceptions.DeadlineExceeded),
        initial=0.2, maximum=5.0, multiplier=2.0, timeout=deadline,
    )


_CreateTaskRequestPb = tasks_v2.CreateTaskRequest.pb()


def _call(method: Any, request: Any, deadline: float) -> Any:
    return method(request=request, retry=retry_policy(deadline), timeout=CALL_TIMEOUT_SECONDS)


def get_task(name: str, view: tasks_v2.Task.View = tasks_v2.Task.View.FULL,
             deadline: float = RETRY_DEADLINE_SECONDS) -> tasks_v2.Task:
    return _call(get_client().get_task, {"name": name, "response_view": view}, deadline)


def delete_task(name: str, deadline: float = RETRY_DEADLINE_SECONDS) -> None:
    _call(get_client().delete_task, {"name": name}, deadline)


def create_task(parent: str, task: tasks_v2.Task, view: tasks_v2.Task.View = tasks_v2.Task.View.FULL,
                deadline: float = RETRY_DEADLINE_SECONDS) -> tasks_v2.Task:
    """CreateTask; retried like the idempotent calls, so ``task.name`` must be set."""
    if not task.name:
        raise ValueError("create_task needs a named task: an unnamed one is not safe to retry")
    request = _CreateTaskRequestPb(parent=parent, response_view=view)
    request.task.CopyFrom(tasks_v2.Task.pb(task))  # raw protobufs: no proto-plus marshalling per field
    return _call(get_client().create_task, tasks_v2.CreateTaskRequest.wrap(request), deadline)


def reset_clients() -> None:
    """Forget the cached clients (tests that switch targets)."""
    with _lock:
        _clients.clear()
