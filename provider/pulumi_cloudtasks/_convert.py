"""Task <-> API message conversions of the field model; import them from ``pulumi_cloudtasks.spec``."""
from __future__ import annotations

import base64
from datetime import timezone
from typing import Any, Mapping

from cloudtasks_emulator.core import rules
from google.cloud import tasks_v2

from .spec import (OUTPUT_FIELDS, SPEC_FIELDS, SPEC_SCHEDULE_KEY, TARGETS, _SUB_FIELDS, _body_bytes,
                   _seconds, is_unknown, normalize, parse_time)


# --- the API message -----------------------------------------------------------------------------

def task_name(spec: Mapping[str, Any]) -> str | None:
    queue, task_id = spec.get("queue"), spec.get("task_id")
    if isinstance(queue, str) and isinstance(task_id, str) and not (is_unknown(queue) or is_unknown(task_id)):
        return f"{queue}/tasks/{task_id}"
    return None


_TaskPb = tasks_v2.Task.pb()


def to_api_task(spec: Mapping[str, Any]) -> tasks_v2.Task:
    """The CreateTask message of a (known) normalised spec. Built on the raw protobuf and wrapped
    (no copy): proto-plus field by field costs more than the rest of a create."""
    task = _TaskPb()
    if name := task_name(spec):
        task.name = name
    for target in TARGETS:
        if not isinstance(spec.get(target), Mapping):
            continue
        req = spec[target]
        msg = getattr(task, target)
        method = req.get("http_method")
        msg.http_method = tasks_v2.HttpMethod[method] if method in rules.HTTP_METHODS else 0
        msg.headers.update({k: v for k, v in (req.get("headers") or {}).items() if isinstance(v, str)})
        if (body := _body_bytes(req)) is not None:
            msg.body = body
        if target == "http_request":
            msg.url = req.get("url", "")
            for token in ("oauth_token", "oidc_token"):
                if req.get(token):
                    getattr(msg, token).MergeFrom(getattr(tasks_v2, _TOKEN_TYPES[token]).pb()(**req[token]))
        else:
            msg.relative_uri = req.get("relative_uri", "/")
            if req.get("app_engine_routing"):
                msg.app_engine_routing.MergeFrom(tasks_v2.AppEngineRouting.pb()(**req["app_engine_routing"]))
    if spec.get("schedule_time"):
        task.schedule_time.FromDatetime(parse_time(spec["schedule_time"]))
    if spec.get("dispatch_deadline"):
        seconds = _seconds(spec["dispatch_deadline"])
        task.dispatch_deadline.seconds = int(seconds)
        task.dispatch_deadline.nanos = round(seconds % 1 * 1e9)
    return tasks_v2.Task.wrap(task)


_TOKEN_TYPES = {"oauth_token": "OAuthToken", "oidc_token": "OidcToken"}


# --- back from the API ---------------------------------------------------------------------------

def _time_text(pb: Any, field: str) -> str | None:
    return rules.format_time(getattr(pb, field).ToDatetime(tzinfo=timezone.utc)) if pb.HasField(field) else None


def _body_fields(body: bytes) -> dict[str, str]:
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode("ascii")}


def spec_from_api(task: tasks_v2.Task) -> dict[str, Any]:
    """The spec of a stored task (import with ``Task.get``): what the service kept, normalised."""
    pb = tasks_v2.Task.pb(task)
    parts = rules.split_task_name(pb.name)
    spec: dict[str, Any] = {"queue": parts[0], "task_id": parts[1]} if parts else {}
    if pb.HasField("http_request"):
        r = pb.http_request
        req: dict[str, Any] = {"url": r.url, "http_method": tasks_v2.HttpMethod(r.http_method or 1).name,
                               "headers": dict(r.headers), **(_body_fields(r.body) if r.body else {})}
        if r.HasField("oauth_token"):
            req["oauth_token"] = {"service_account_email": r.oauth_token.service_account_email,
                                  "scope": r.oauth_token.scope or rules.DEFAULT_OAUTH_SCOPE}
        if r.HasField("oidc_token"):
            req["oidc_token"] = {"service_account_email": r.oidc_token.service_account_email,
                                 **({"audience": r.oidc_token.audience} if r.oidc_token.audience else {})}
        spec["http_request"] = req
    elif pb.HasField("app_engine_http_request"):
        r = pb.app_engine_http_request
        req = {"relative_uri": r.relative_uri or "/", "http_method": tasks_v2.HttpMethod(r.http_method or 1).name,
               "headers": dict(r.headers), **(_body_fields(r.body) if r.body else {})}
        routing = {k: getattr(r.app_engine_routing, k) for k in _SUB_FIELDS["app_engine_routing"]
                   if getattr(r.app_engine_routing, k)}
        if routing:
            req["app_engine_routing"] = routing
        spec["app_engine_http_request"] = req
    if schedule := _time_text(pb, "schedule_time"):
        spec["schedule_time"] = schedule
    if pb.HasField("dispatch_deadline"):
        d = pb.dispatch_deadline
        spec["dispatch_deadline"] = rules.format_duration(d.seconds + d.nanos / 1e9)
    return normalize(spec)[0]


def api_mismatches(spec: Mapping[str, Any], task: tasks_v2.Task) -> list[str]:
    """Fields where the stored ``task`` is not what ``spec`` asks for (ALREADY_EXISTS adoption).

    Tolerates what the service changes on its own: headers it adds or computes, a token replacing
    Authorization, bodies omitted by the BASIC view, a past schedule_time moved to creation time.
    """
    stored = spec_from_api(task)
    out = [k for k in ("queue", "task_id", "dispatch_deadline") if k in spec and spec.get(k) != stored.get(k)]
    target = next((t for t in TARGETS if t in spec), None)
    if target is None or target not in stored:
        return out + [target or "http_request"]
    want, have = spec[target], stored[target]
    for key in ("url", "relative_uri", "http_method", "oauth_token", "oidc_token", "app_engine_routing"):
        if key in want and want.get(key) != have.get(key):
            out.append(f"{target}.{key}")
    view_full = tasks_v2.Task.pb(task).view == tasks_v2.Task.View.FULL
    if view_full and _body_bytes(want) != _body_bytes(have):
        out.append(f"{target}.body")
    have_headers = {k.lower(): v for k, v in have.get("headers", {}).items()}
    skip = {"authorization"} if (want.get("oauth_token") or want.get("oidc_token")) else set()
    if any(have_headers.get(k.lower()) != v for k, v in want.get("headers", {}).items()
           if k.lower() not in skip | rules.COMPUTED_HEADERS | {"user-agent"}):
        out.append(f"{target}.headers")
    if spec.get("schedule_time") and stored.get("schedule_time"):
        asked, kept = parse_time(spec["schedule_time"]), parse_time(stored["schedule_time"])
        # A time in the past is stored as the creation time; only a future time must match.
        if asked != kept and asked > parse_time(_time_text(tasks_v2.Task.pb(task), "create_time") or stored["schedule_time"]):
            out.append("schedule_time")
    return out


def _attempt(pb: Any) -> dict[str, Any] | None:
    out: dict[str, Any] = {k: t for k in ("schedule_time", "dispatch_time", "response_time")
                           if (t := _time_text(pb, k))}
    if pb.HasField("response_status"):
        out["response_status"] = {"code": int(pb.response_status.code), "message": pb.response_status.message}
    return out or None


def task_status(task: tasks_v2.Task | None) -> str:
    """``gone`` when NOT_FOUND (succeeded, exhausted retries or deleted), ``dispatched`` once attempted
    (dispatch_count counts in-flight attempts too), else ``scheduled``."""
    if task is None:
        return "gone"
    pb = tasks_v2.Task.pb(task)
    return "dispatched" if pb.dispatch_count > 0 or pb.HasField("first_attempt") else "scheduled"


def outputs_from_api(spec: Mapping[str, Any], task: tasks_v2.Task | None,
                     previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """JSON-safe outputs: the spec fields as given (so secret inputs stay secret under the same
    keys), the service's view of the task, and ``status``. ``task=None`` keeps ``previous``'s last
    observed values with ``status: gone``."""
    out: dict[str, Any] = {k: v for k, v in spec.items() if k in SPEC_FIELDS}
    out[SPEC_SCHEDULE_KEY] = spec.get("schedule_time") or ""
    if task is None:
        for key in OUTPUT_FIELDS:
            if previous and previous.get(key) is not None:
                out[key] = previous[key]
        out.setdefault("name", task_name(spec))
        out["status"] = "gone"
        return out
    pb = tasks_v2.Task.pb(task)
    out.update(name=pb.name, create_time=_time_text(pb, "create_time"),
               schedule_time=_time_text(pb, "schedule_time") or spec.get("schedule_time"),
               dispatch_count=int(pb.dispatch_count), response_count=int(pb.response_count),
               first_attempt=_attempt(pb.first_attempt) if pb.HasField("first_attempt") else None,
               last_attempt=_attempt(pb.last_attempt) if pb.HasField("last_attempt") else None,
               view=tasks_v2.Task.View(pb.view).name if pb.view else "BASIC",
               status=task_status(task))
    if (parts := rules.split_task_name(pb.name)) and "task_id" not in out:
        out["queue"], out["task_id"] = parts
    return {k: v for k, v in out.items() if v is not None}
