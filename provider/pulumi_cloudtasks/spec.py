"""The one field model of a Cloud Tasks task, shared by the provider, the CLI and the policy rules.

Public API (everything works on plain dicts in snake_case; no pulumi resource types needed):

- ``SPEC_FIELDS`` / ``OUTPUT_FIELDS`` / ``HIDDEN_FIELDS``: which top-level properties are inputs (the
  spec), which are output-only, and which are internal bookkeeping (``__name``, ``__provider`` ...).
- ``normalize(props, now=None) -> (spec, failures)``: raw input props (as a stack program, the engine
  or a policy sees them) to the canonical spec, plus ``[(property_path, reason)]`` for every rule the
  service would break. Never raises. Unknown values (preview) are kept in place and never validated.
  Canonical forms: durations ``"600s"``, times RFC3339 UTC ``...Z``, methods upper-case, headers a
  ``dict[str, str]``, bodies ``body`` (text) or ``body_base64`` (bytes), defaults applied
  (``http_method`` POST, ``headers`` {}, HTTP ``dispatch_deadline`` 600s, OAuth scope,
  ``relative_uri`` "/"). ``normalize(normalize(p)[0]) == normalize(p)``.
- ``is_unknown(value)`` / ``contains_unknowns(value)``: preview placeholders.
- ``spec_from_state(state)``: the spec part of a resource's stored outputs (for diff).
- ``changed_fields(old, new) -> list[str]``: top-level spec fields that differ (unknown = changed);
  ``spec_equal(a, b)``.
- ``to_api_task(spec) -> tasks_v2.Task`` (name set from queue + task_id when both are known);
  ``spec_from_api(task)``: the spec a stored task corresponds to (import, adoption).
- ``api_mismatches(spec, task) -> list[str]``: fields where a stored task differs from a spec,
  tolerating what the service adds (computed headers, BASIC view without bodies, past times).
- ``outputs_from_api(spec, task, previous=None) -> dict``: JSON-safe outputs; ``task=None`` means the
  task is gone (NOT_FOUND) and the last counters in ``previous`` are kept.
- ``task_status(task) -> "scheduled" | "dispatched" | "gone"``.
- ``parse_time`` / ``parse_duration``: the accepted input forms to aware datetime / seconds.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from cloudtasks_emulator.core import rules
from google.cloud import tasks_v2

UNKNOWN_SENTINEL = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
_SECRET_SIG = "4dabf18193072939515e22adb298388d"

TARGETS = ("http_request", "app_engine_http_request")
SPEC_FIELDS = ("queue", "task_id", *TARGETS, "schedule_time", "dispatch_deadline", "triggers")
OUTPUT_FIELDS = ("name", "create_time", "schedule_time", "dispatch_count", "response_count",
                 "first_attempt", "last_attempt", "view", "status")
NAME_KEY = "__name"  # the Pulumi resource name, passed by Task for autonaming
AUTONAMED_KEY = "__autonamed"  # task_id was made by check, so a replacement gets a fresh one
SPEC_SCHEDULE_KEY = "__spec_schedule_time"  # the input schedule_time ("" = none) next to the stored one
HIDDEN_FIELDS = ("__provider", NAME_KEY, AUTONAMED_KEY, SPEC_SCHEDULE_KEY)

_REQUEST_FIELDS = {
    "http_request": ("url", "http_method", "headers", "body", "body_base64", "oauth_token", "oidc_token"),
    "app_engine_http_request": ("relative_uri", "http_method", "headers", "body", "body_base64",
                                "app_engine_routing"),
}
_SUB_FIELDS = {
    "oauth_token": ("service_account_email", "scope"),
    "oidc_token": ("service_account_email", "audience"),
    "app_engine_routing": ("service", "version", "instance"),
}
_TIME_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)")
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)s")

Failure = tuple[str, str]


# --- Unknowns and secrets ------------------------------------------------------------------------

def is_unknown(value: Any) -> bool:
    """True for a preview placeholder: the engine's sentinel string, ``pulumi.output.Unknown`` (what
    ``rpc.deserialize_properties(keep_unknowns=True)`` yields) or an unresolved ``pulumi.Output``."""
    if isinstance(value, str):
        return value == UNKNOWN_SENTINEL
    return type(value).__name__ in ("Unknown", "Output") and type(value).__module__.startswith("pulumi")


def contains_unknowns(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(contains_unknowns(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_unknowns(v) for v in value)
    return is_unknown(value)


def _unwrap(value: Any) -> Any:
    """Plain value of an RPC-wrapped secret (engines that pass secrets to us; ours don't)."""
    if isinstance(value, Mapping) and value.get(_SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
        return value.get("value")
    return value


# --- Canonical forms -----------------------------------------------------------------------------

def parse_time(value: Any) -> datetime:
    """RFC3339 string or timezone-aware datetime -> aware UTC datetime, truncated to microseconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("must be timezone-aware (a naive datetime is ambiguous)")
        return value.astimezone(timezone.utc)
    if not isinstance(value, str):
        raise ValueError(f"must be an RFC3339 string or a timezone-aware datetime, got {type(value).__name__}")
    match = _TIME_RE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not an RFC3339 time such as 2026-12-01T03:00:00Z")
    y, mo, d, h, mi, s, frac, zone = match.groups()
    tz = timezone.utc if zone in "Zz" else timezone(
        (1 if zone[0] == "+" else -1) * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    micros = int((frac or "0")[:6].ljust(6, "0"))
    return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micros, tz).astimezone(timezone.utc)


def parse_duration(value: Any) -> float:
    """"600s", "0.5s", a number of seconds or a timedelta -> seconds (non-negative, finite)."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as \"600s\", not a boolean")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION_RE.fullmatch(value.strip()):
        seconds = float(value.strip()[:-1])
    else:
        raise ValueError(f"{value!r} is not a duration such as \"600s\" (seconds, a number or a timedelta)")
    if not (0 <= seconds < 1e10):
        raise ValueError(f"{value!r} must be a non-negative duration")
    return seconds


def _seconds(text: str) -> float:
    return float(text[:-1])


# --- normalize -----------------------------------------------------------------------------------

def normalize(props: Mapping[str, Any], now: datetime | None = None, *,
              check_rules: bool = True) -> tuple[dict[str, Any], list[Failure]]:
    """Canonical spec and failures of raw input props; never raises (see the module docstring).

    ``check_rules=False`` only canonicalises (shape and type failures are still reported): for
    inputs that already went through ``check``, where the service rules were applied.
    """
    failures: list[Failure] = []
    try:
        spec = _normalize(props, failures)
        if not failures and check_rules:
            failures.extend(validate(spec, now))
    except Exception as exc:  # a bug must surface as a failure, not crash check or a policy
        return {}, failures + [("", f"could not normalise the task: {exc!r}")]
    return spec, failures


def _normalize(props: Mapping[str, Any], failures: list[Failure]) -> dict[str, Any]:
    props = _unwrap(props)
    if not isinstance(props, Mapping):
        failures.append(("", "task properties must be an object"))
        return {}
    spec: dict[str, Any] = {}
    for key, raw in props.items():
        value = _unwrap(raw)
        if key in HIDDEN_FIELDS or (key in OUTPUT_FIELDS and key not in SPEC_FIELDS):
            continue
        if key not in SPEC_FIELDS:
            failures.append((str(key), f"unknown property {key!r}; expected one of {', '.join(SPEC_FIELDS)}"))
        elif value is None:
            continue
        elif is_unknown(value):
            spec[key] = value
        elif key in TARGETS:
            request = _normalize_request(key, value, failures)
            if request is not None:
                spec[key] = request
        elif key == "schedule_time":
            try:
                spec[key] = rules.format_time(parse_time(value))
            except (ValueError, OverflowError) as exc:
                failures.append((key, f"schedule_time {exc}"))
        elif key == "dispatch_deadline":
            try:
                spec[key] = rules.format_duration(parse_duration(value))
            except ValueError as exc:
                failures.append((key, f"dispatch_deadline {exc}"))
        elif key == "triggers":
            if isinstance(value, (list, tuple)) and _json_safe(value):
                spec[key] = list(value)
            else:
                failures.append((key, "triggers must be a list of JSON values (strings, numbers, ...)"))
        elif isinstance(value, str):  # queue, task_id
            spec[key] = value
        else:
            failures.append((key, f"{key} must be a string, got {type(value).__name__}"))
    if "http_request" in spec and not is_unknown(spec["http_request"]) and "dispatch_deadline" not in spec:
        spec["dispatch_deadline"] = rules.format_duration(rules.HTTP_DEADLINE_DEFAULT_SECONDS)
    return spec


def _normalize_request(target: str, value: Any, failures: list[Failure]) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        failures.append((target, f"{target} must be an object"))
        return None
    out: dict[str, Any] = {}
    for key, raw in value.items():
        path, item = f"{target}.{key}", _unwrap(raw)
        if key not in _REQUEST_FIELDS[target]:
            failures.append((path, f"unknown property {key!r}; expected one of {', '.join(_REQUEST_FIELDS[target])}"))
        elif item is None:
            continue
        elif is_unknown(item):
            out[key] = item
        elif key == "http_method":
            name = getattr(item, "value", item)  # HttpMethod enum members are str subclasses anyway
            if isinstance(name, str):
                out[key] = name.upper()
            else:
                failures.append((path, "http_method must be a string such as \"POST\""))
        elif key == "headers":
            if isinstance(item, Mapping) and all(isinstance(k, str) for k in item):
                headers = {k: _unwrap(v) for k, v in item.items() if _unwrap(v) is not None}
                bad = [k for k, v in headers.items() if not (isinstance(v, str) or is_unknown(v))]
                if bad:
                    failures.append((path, f"header values must be strings (see {bad[0]!r})"))
                out[key] = headers
            else:
                failures.append((path, "headers must be an object of header name to value"))
        elif key == "body":
            if isinstance(item, (bytes, bytearray)):
                out["body_base64"] = base64.b64encode(bytes(item)).decode("ascii")
            elif isinstance(item, str):
                out[key] = item
            else:
                failures.append((path, "body must be a string or bytes"))
        elif key == "body_base64":
            try:
                out[key] = base64.b64encode(base64.b64decode(item, validate=True)).decode("ascii")
            except (binascii.Error, ValueError, TypeError):
                failures.append((path, "body_base64 must be standard base64 text"))
        elif key in _SUB_FIELDS:
            sub = _normalize_sub(path, key, item, failures)
            if sub is not None:
                out[key] = sub
        elif isinstance(item, str):
            out[key] = item
        else:
            failures.append((path, f"{key} must be a string"))
    if "body" in out and "body_base64" in out:
        failures.append((f"{target}.body", "give body or body_base64, not both"))
    out.setdefault("http_method", rules.DEFAULT_HTTP_METHOD)
    out.setdefault("headers", {})
    if target == "app_engine_http_request" and not out.get("relative_uri"):
        out["relative_uri"] = "/"
    return out


def _normalize_sub(path: str, key: str, value: Any, failures: list[Failure]) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        failures.append((path, f"{key} must be an object"))
        return None
    out: dict[str, Any] = {}
    for name, raw in value.items():
        item = _unwrap(raw)
        if name not in _SUB_FIELDS[key]:
            failures.append((f"{path}.{name}", f"unknown property {name!r}; expected one of {', '.join(_SUB_FIELDS[key])}"))
        elif item is None or item == "":  # proto3: an empty string is the unset value
            continue
        elif isinstance(item, str) or is_unknown(item):
            out[name] = item
        else:
            failures.append((f"{path}.{name}", f"{name} must be a string"))
    if key == "oauth_token":
        out.setdefault("scope", rules.DEFAULT_OAUTH_SCOPE)
    return out


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value, default=lambda v: None if is_unknown(v) else (_ for _ in ()).throw(TypeError()))
        return True
    except (TypeError, ValueError):
        return False


# --- validation ----------------------------------------------------------------------------------

_PLACEHOLDERS = {"url": "https://unknown.invalid/", "relative_uri": "/", "http_method": "POST",
                 "service_account_email": "unknown@unknown.invalid"}


def _known(value: Any, key: str = "") -> Any:
    """A copy of ``value`` where unknowns are replaced by values that satisfy every rule, so the
    shared rules can run on the known parts only."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if is_unknown(v):
                if k in _PLACEHOLDERS:
                    out[k] = _PLACEHOLDERS[k]
                elif k in ("headers", "oauth_token", "oidc_token", "app_engine_routing"):
                    out[k] = {} if k == "headers" else {"service_account_email": _PLACEHOLDERS["service_account_email"]}
            else:
                out[k] = _known(v, k)
        return out
    return value


def validate(spec: Mapping[str, Any], now: datetime | None = None) -> list[Failure]:
    """Every service rule a normalised spec breaks, as ``(property_path, reason)``; unknowns skipped."""
    now = now or datetime.now(timezone.utc)
    out: list[Failure] = []
    queue, task_id = spec.get("queue"), spec.get("task_id")
    if queue is None:
        out.append(("queue", "queue is required: the full queue name projects/P/locations/L/queues/Q"))
    elif not is_unknown(queue) and (error := rules.queue_name_error(queue)):
        out.append(("queue", error))
    if task_id is not None and not is_unknown(task_id) and (error := rules.task_id_error(task_id)):
        out.append(("task_id", error))
    known = _known(spec)
    targets_unknown = any(is_unknown(spec.get(t)) for t in TARGETS)
    schedule = known.get("schedule_time")
    if targets_unknown:  # the target type decides most rules; only the time can be checked
        if schedule and (error := rules.schedule_time_error(parse_time(schedule), now)):
            out.append(("schedule_time", error))
        return out
    api = {t: dict(known[t], body=_body_bytes(known[t])) for t in TARGETS if t in known}
    api["schedule_time"] = parse_time(schedule) if schedule else None
    deadline = known.get("dispatch_deadline")
    api["dispatch_deadline"] = _seconds(deadline) if deadline else None
    for violation in rules.validate_task(api, now):
        field = violation.field
        if field.endswith(".body") and "body_base64" in spec.get(field.split(".")[0], {}):
            field += "_base64"
        out.append((field, violation.message))
    if not out and not contains_unknowns(spec):
        size = tasks_v2.Task.pb(to_api_task(spec)).ByteSize()
        if error := rules.task_size_error(size):
            target = next(t for t in TARGETS if t in spec)
            field = next((f"{target}.{b}" for b in ("body", "body_base64") if b in spec[target]), target)
            out.append((field, f"{error}: {size} bytes encoded, limit {rules.MAX_TASK_SIZE_BYTES}"))
    return out


def _body_bytes(request: Mapping[str, Any]) -> bytes | None:
    if request.get("body_base64"):
        return base64.b64decode(request["body_base64"])
    return request["body"].encode("utf-8") if request.get("body") else None


# --- comparison ----------------------------------------------------------------------------------

def spec_from_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The spec part of stored outputs: spec fields, with the input schedule_time, not the stored one."""
    spec = {k: state[k] for k in SPEC_FIELDS if state.get(k) is not None}
    if SPEC_SCHEDULE_KEY in state:
        spec.pop("schedule_time", None)
        if state[SPEC_SCHEDULE_KEY]:
            spec["schedule_time"] = state[SPEC_SCHEDULE_KEY]
    return normalize(spec)[0] if spec else {}


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Top-level spec fields whose values differ; a field holding an unknown counts as changed."""
    return [k for k in SPEC_FIELDS
            if contains_unknowns(new.get(k)) or contains_unknowns(old.get(k)) or old.get(k) != new.get(k)]


def spec_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return not changed_fields(a, b)


# The API conversions live in _convert.py (size); they are part of this module's API.
from ._convert import (api_mismatches, outputs_from_api, spec_from_api, task_name,  # noqa: E402
                       task_status, to_api_task)

__all__ = ["SPEC_FIELDS", "OUTPUT_FIELDS", "HIDDEN_FIELDS", "TARGETS", "NAME_KEY", "AUTONAMED_KEY",
           "SPEC_SCHEDULE_KEY", "UNKNOWN_SENTINEL", "Failure", "normalize", "validate", "is_unknown",
           "contains_unknowns", "parse_time", "parse_duration", "spec_from_state", "changed_fields",
           "spec_equal", "task_name", "to_api_task", "spec_from_api", "api_mismatches",
           "outputs_from_api", "task_status"]
