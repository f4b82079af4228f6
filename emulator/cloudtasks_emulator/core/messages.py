"""Conversions between the API's protobufs and the plain values of ``rules``, and the defaults the
service fills into stored tasks and queues. No state, no I/O: the service orchestrates."""
from __future__ import annotations

import math
from typing import Any, Mapping

from google.cloud import tasks_v2
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.timestamp_pb2 import Timestamp

from . import rules
from .clock import to_datetime
from .errors import invalid_argument

Task = tasks_v2.Task.pb()
Queue = tasks_v2.Queue.pb()
# Name/Value helpers of the raw protobuf enums (proto-plus enums do not expose them).
HttpMethod = EnumTypeWrapper(tasks_v2.HttpRequest.pb().DESCRIPTOR.fields_by_name["http_method"].enum_type)
QUEUE_STATE = EnumTypeWrapper(Queue.DESCRIPTOR.enum_types_by_name["State"])
TASK_VIEW = EnumTypeWrapper(Task.DESCRIPTOR.enum_types_by_name["View"])

APP_ENGINE_USER_AGENT = "AppEngine-Google; (+http://code.google.com/appengine)"
# Enum numbers looked up once (the wrappers' Value()/values() are slow on a hot path).
_POST = HttpMethod.Value("POST")
_BASIC = TASK_VIEW.Value("BASIC")
_TASK_VIEWS = frozenset(TASK_VIEW.values())
_METHOD_NAMES = {v: k for k, v in HttpMethod.items() if v}


# --- Time ----------------------------------------------------------------------------------------

def timestamp(epoch: float, resolution_ns: int = 1) -> Timestamp:
    """A Timestamp of ``epoch`` seconds, truncated to ``resolution_ns`` (1000 = microseconds)."""
    nanos_total = int(round(epoch * 1e9))
    nanos_total -= nanos_total % resolution_ns
    return Timestamp(seconds=nanos_total // 10**9, nanos=nanos_total % 10**9)


def epoch(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def seconds(duration: Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def duration(value: float) -> Duration:
    nanos_total = int(round(value * 1e9))
    return Duration(seconds=nanos_total // 10**9, nanos=nanos_total % 10**9)


# --- Tasks -----------------------------------------------------------------------------------------

def method_name(value: int) -> str | None:
    if value == 0:
        return None
    name = _METHOD_NAMES.get(value)
    # An unknown enum number: rules report it as an unknown method.
    return name if name is not None else str(value)


def value_violations(message: Any, fields: tuple[str, ...], prefix: str = "") -> list[rules.Violation]:
    """Out-of-range Timestamp/Duration ``fields`` of ``message``: checked before any conversion."""
    out: list[rules.Violation] = []
    for name in fields:
        if not message.HasField(name):
            continue
        value = getattr(message, name)
        check = rules.timestamp_error if isinstance(value, Timestamp) else rules.duration_error
        error = check(prefix + name, value.seconds, value.nanos)
        if error:
            out.append(rules.Violation(prefix + name, error))
    return out


def rule_view(task: Task) -> dict[str, Any]:  # type: ignore[valid-type]
    """The task in the plain shape ``rules.validate_task`` reads."""
    out: dict[str, Any] = {
        "schedule_time": to_datetime(epoch(task.schedule_time)) if task.HasField("schedule_time") else None,
        "dispatch_deadline": seconds(task.dispatch_deadline) if task.HasField("dispatch_deadline") else None,
    }
    target = task.WhichOneof("message_type")
    if target == "http_request":
        req = task.http_request
        http: dict[str, Any] = {
            "url": req.url, "http_method": method_name(req.http_method),
            "headers": dict(req.headers) if req.headers else {}, "body": req.body,
        }
        if req.HasField("oauth_token"):
            http["oauth_token"] = {"service_account_email": req.oauth_token.service_account_email}
        if req.HasField("oidc_token"):
            http["oidc_token"] = {"service_account_email": req.oidc_token.service_account_email}
        out["http_request"] = http
    elif target == "app_engine_http_request":
        req = task.app_engine_http_request
        out["app_engine_http_request"] = {
            "relative_uri": req.relative_uri, "http_method": method_name(req.http_method),
            "headers": dict(req.headers), "body": req.body,
        }
    return out


_HTTP_DEADLINE_DEFAULT = duration(rules.HTTP_DEADLINE_DEFAULT_SECONDS)


def fill_task_defaults(task: Task, now: float, app_engine_host: str) -> None:  # type: ignore[valid-type]
    """What the service adds to a task it accepts: method, deadline, scope, App Engine headers,
    schedule time (past/unset → now, microsecond precision), create time (whole seconds)."""
    if task.HasField("http_request"):
        req = task.http_request
        if not req.http_method:
            req.http_method = _POST
        if req.HasField("oauth_token") and not req.oauth_token.scope:
            req.oauth_token.scope = rules.DEFAULT_OAUTH_SCOPE
        if seconds(task.dispatch_deadline) == 0:
            task.dispatch_deadline.CopyFrom(_HTTP_DEADLINE_DEFAULT)
    else:
        req = task.app_engine_http_request
        if not req.http_method:
            req.http_method = _POST
        if not req.relative_uri:
            req.relative_uri = "/"
        _set_header(req.headers, "User-Agent", APP_ENGINE_USER_AGENT)
        if req.body:
            _set_header(req.headers, "Content-Length", str(len(req.body)))
            if not any(k.lower() == "content-type" for k in req.headers):
                req.headers["Content-Type"] = "application/octet-stream"
        routing = req.app_engine_routing
        # App Engine's host is instance.version.service.<app host>; locally the app host is the
        # --app-engine-url's host, and the routed name goes in the Host header of the dispatch.
        parts = [p for p in (routing.instance, routing.version, routing.service) if p]
        routing.host = ".".join(parts + [app_engine_host])
    if task.HasField("dispatch_deadline"):  # milliseconds at most
        task.dispatch_deadline.nanos -= task.dispatch_deadline.nanos % 1_000_000
    if not task.HasField("schedule_time") or epoch(task.schedule_time) < now:
        task.schedule_time.CopyFrom(timestamp(now, 1000))
    else:
        task.schedule_time.nanos -= task.schedule_time.nanos % 1000
    task.create_time.seconds = int(now)  # output-only, cleared before: whole seconds, no nanos
    task.create_time.nanos = 0


def _set_header(headers: Any, name: str, value: str) -> None:
    for key in [k for k in headers if k.lower() == name.lower()]:
        del headers[key]
    headers[name] = value


def with_view(task: Task, view: int) -> Task:  # type: ignore[valid-type]
    """A copy of ``task`` as returned for ``view`` (BASIC when unspecified: no bodies)."""
    out = Task()
    out.CopyFrom(task)
    return apply_view(out, view)


def apply_view(task: Task, view: int) -> Task:  # type: ignore[valid-type]
    """``with_view`` in place: ``task`` itself, changed."""
    view = view or _BASIC
    if view == _BASIC:
        target = task.WhichOneof("message_type")
        if target == "http_request":
            if task.http_request.body:
                task.http_request.ClearField("body")
        elif target == "app_engine_http_request":
            if task.app_engine_http_request.body:
                task.app_engine_http_request.ClearField("body")
    task.view = view
    return task


def check_view(view: int) -> None:
    if view not in _TASK_VIEWS:
        raise invalid_argument(f"response_view: unknown Task.View value {view}.")


# --- Queues ----------------------------------------------------------------------------------------

# Fields an UpdateQueue mask may name (state changes go through Pause/Resume; the rest is output-only).
UPDATABLE_QUEUE_FIELDS = ("app_engine_routing_override", "rate_limits", "retry_config", "stackdriver_logging_config")


def queue_violations(queue: Queue) -> list[rules.Violation]:  # type: ignore[valid-type]
    rate = queue.rate_limits
    retry = queue.retry_config
    durations = value_violations(retry, ("min_backoff", "max_backoff", "max_retry_duration"), "retry_config.")
    if durations:  # converting them would overflow
        return durations
    rate_values = {
        "max_dispatches_per_second": rate.max_dispatches_per_second if rate.max_dispatches_per_second else None,
        "max_concurrent_dispatches": rate.max_concurrent_dispatches if rate.max_concurrent_dispatches else None,
    }
    retry_values = {
        "max_attempts": retry.max_attempts if queue.HasField("retry_config") else None,
        "min_backoff": seconds(retry.min_backoff) if retry.HasField("min_backoff") else None,
        "max_backoff": seconds(retry.max_backoff) if retry.HasField("max_backoff") else None,
        "max_doublings": retry.max_doublings,
    }
    out = rules.queue_limits_violations(rate_values, retry_values)
    if not math.isfinite(rate.max_dispatches_per_second):
        out.append(rules.Violation("rate_limits.max_dispatches_per_second", "max_dispatches_per_second must be a finite number."))
    return out


def fill_queue_defaults(queue: Queue) -> None:  # type: ignore[valid-type]
    """Zero (unset) limits take the service's defaults; max_burst_size is derived from the rate.
    A zero max_doublings also takes the default: proto3 cannot tell it from unset."""
    rate = queue.rate_limits
    defaults = rules.DEFAULT_RATE_LIMITS
    if not rate.max_dispatches_per_second:
        rate.max_dispatches_per_second = defaults["max_dispatches_per_second"]
    if not rate.max_concurrent_dispatches:
        rate.max_concurrent_dispatches = defaults["max_concurrent_dispatches"]
    rate.max_burst_size = rules.max_burst_size(rate.max_dispatches_per_second)
    retry = queue.retry_config
    retry_defaults = rules.DEFAULT_RETRY_CONFIG
    if not retry.max_attempts:
        retry.max_attempts = retry_defaults["max_attempts"]
    if not seconds(retry.min_backoff):
        retry.min_backoff.CopyFrom(duration(retry_defaults["min_backoff"]))
    if not seconds(retry.max_backoff):
        retry.max_backoff.CopyFrom(duration(retry_defaults["max_backoff"]))
    if not retry.max_doublings:
        retry.max_doublings = retry_defaults["max_doublings"]
    if not retry.HasField("max_retry_duration"):
        retry.max_retry_duration.CopyFrom(duration(retry_defaults["max_retry_duration"]))
    if not queue.state:
        queue.state = QUEUE_STATE.Value("RUNNING")


def apply_queue_update(existing: Queue, update: Queue, mask: field_mask_pb2.FieldMask) -> Queue:  # type: ignore[valid-type]
    """``existing`` with the masked fields of ``update`` (all updatable fields when the mask is empty)."""
    paths = list(mask.paths) or list(UPDATABLE_QUEUE_FIELDS)
    for path in paths:
        if path.split(".")[0] not in UPDATABLE_QUEUE_FIELDS:
            raise invalid_argument(f'update_mask: field "{path}" cannot be updated'
                                   + (" (use PauseQueue/ResumeQueue)." if path == "state" else "."))
    result = Queue()
    result.CopyFrom(existing)
    try:
        field_mask_pb2.FieldMask(paths=paths).MergeMessage(update, result, replace_message_field=True)
    except ValueError as exc:
        raise invalid_argument(f"update_mask: {exc}") from None
    return result


def queue_from_config(entry: Mapping[str, Any]) -> Queue:  # type: ignore[valid-type]
    """A Queue from one entry of the ``--config`` YAML: proto field names (snake or camel case);
    durations as "10s"/"1.5s" strings or plain numbers of seconds; ``state: PAUSED`` allowed."""
    data = dict(entry)
    retry = dict(data.get("retry_config") or data.get("retryConfig") or {})
    for key in list(retry):
        if isinstance(retry[key], (int, float)) and key not in ("max_attempts", "maxAttempts", "max_doublings", "maxDoublings"):
            retry[key] = f"{retry[key]}s"
    data.pop("retryConfig", None)
    if retry:
        data["retry_config"] = retry
    queue = Queue()
    try:
        json_format.ParseDict(data, queue)
    except json_format.ParseError as exc:
        raise ValueError(f"queue {entry.get('name')!r}: {exc}") from None
    return queue


def parse_state_filter(text: str) -> int | None:
    """The queue state named by a ListQueues ``filter`` such as ``state: PAUSED`` (None: no filter)."""
    text = (text or "").strip()
    if not text:
        return None
    for sep in (":", "="):
        key, found, value = text.partition(sep)
        if found and key.strip() == "state" and value.strip() in QUEUE_STATE.keys():
            return QUEUE_STATE.Value(value.strip())
    raise invalid_argument(f'filter: unsupported filter "{text}"; only "state: <RUNNING|PAUSED|DISABLED>" is supported.')
