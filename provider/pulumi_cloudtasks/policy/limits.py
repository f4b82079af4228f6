"""Service limits (from the spec model, the provider's own check), explicit task IDs, task count."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from cloudtasks_emulator.core import rules
from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ReportViolation, StackValidationPolicy

from .. import spec
from ._common import (REDACTED, TASK_TYPE_TOKEN, Reporter, body_bytes, config_of, known, number, origin,
                      report_unknown_config, resource_policy, target, task_props)

# --- cloudtasks-service-limits ---------------------------------------------------------------------

SERVICE_LIMITS = "cloudtasks-service-limits"
SERVICE_LIMITS_SCHEMA = {
    "maxScheduleDays": {
        "type": "number", "minimum": 0,
        "description": "Tighter horizon for schedule_time, in days from now "
                       f"(the service allows {rules.MAX_SCHEDULE_AHEAD.days} days).",
    },
    "maxDispatchDeadlineSeconds": {
        "type": "number", "minimum": 0,
        "description": "Tighter maximum for dispatch_deadline, in seconds (the service allows "
                       f"{rules.HTTP_DEADLINE_RANGE_SECONDS[1]:g}s for HTTP and "
                       f"{rules.APP_ENGINE_DEADLINE_RANGE_SECONDS[1]:g}s for App Engine targets).",
    },
    "maxBodyBytes": {
        "type": "integer", "minimum": 0,
        "description": f"Tighter maximum body size in bytes (the service allows tasks of "
                       f"{rules.MAX_TASK_SIZE_BYTES} bytes in all).",
    },
}

# Where a failure of the spec model points: the fix to suggest, by property path prefix.
_FIXES = (
    ("queue", "give the full queue name projects/<PROJECT>/locations/<LOCATION>/queues/<QUEUE>"),
    ("task_id", "use 1-500 letters, digits, hyphens or underscores, or drop task_id to autoname"),
    ("schedule_time", f"schedule at most {rules.MAX_SCHEDULE_AHEAD.days} days ahead, as an RFC3339 time"),
    ("dispatch_deadline", "use a duration such as \"600s\" within the target type's range "
                          f"(HTTP {rules.HTTP_DEADLINE_RANGE_SECONDS[0]:g}-{rules.HTTP_DEADLINE_RANGE_SECONDS[1]:g}s)"),
    ("http_request.url", "use an absolute http(s) URL, https when a token is set"),
    ("http_request.oidc_token", "set only one of oidc_token and oauth_token, with service_account_email"),
    ("http_request.oauth_token", "set only one of oidc_token and oauth_token, with service_account_email"),
    (".headers", "drop headers Cloud Tasks computes or reserves (Host, Content-Length, X-Google-*, "
                 "X-AppEngine-*) and keep header values strings"),
    (".body", f"keep the body well under {rules.MAX_TASK_SIZE_BYTES} bytes and send it only with "
              "POST, PUT or PATCH (App Engine: POST or PUT)"),
    (".http_method", f"use one of {', '.join(rules.HTTP_METHODS)}"),
    (".relative_uri", "start relative_uri with / and leave out spaces"),
    ("http_request", "give exactly one of http_request and app_engine_http_request"),
)


def _fix_for(path: str) -> str:
    for prefix, fix in _FIXES:
        if path.startswith(prefix) or (prefix.startswith(".") and prefix in path):
            return fix
    return "correct the property as the message says (the provider's check rejects it too)"


def _shown(path: str, props: Mapping[str, Any]) -> str | None:
    """The value at fault for a spec failure, when it is safe to show (never headers or bodies;
    only the origin of a URL)."""
    if ".headers" in path or ".body" in path:
        return None
    node: Any = props
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if path.endswith(".url"):
        return origin(node) if isinstance(node, str) else None
    return repr(node) if isinstance(node, (str, int, float)) and not isinstance(node, bool) else None


def check_service_limits(args: Any, report: ReportViolation, config: Mapping[str, Any],
                         now: datetime | None = None) -> None:
    props = task_props(args)
    if props is None:
        return
    now = now or datetime.now(timezone.utc)
    reporter = Reporter(args, report, props)
    normalized, failures = spec.normalize(props, now)
    for path, reason in failures:
        reporter(path or "task", _shown(path, props), reason, _fix_for(path))
    if failures:
        return  # the tighter maxima only make sense on a task the service would accept
    max_days = number(config.get("maxScheduleDays"))
    schedule = normalized.get("schedule_time")
    if max_days is not None and isinstance(schedule, str) and known(schedule):
        when = spec.parse_time(schedule)
        if when - now > timedelta(days=max_days):
            reporter("schedule_time", schedule,
                     f"it is {(when - now) / timedelta(days=1):.1f} days ahead, more than maxScheduleDays "
                     f"({max_days:g})", f"schedule the task at most {max_days:g} days ahead")
    max_deadline = number(config.get("maxDispatchDeadlineSeconds"))
    deadline = normalized.get("dispatch_deadline")
    if max_deadline is not None and isinstance(deadline, str) and known(deadline):
        seconds = spec.parse_duration(deadline)
        if seconds > max_deadline:
            default = " (the default for HTTP targets)" if props.get("dispatch_deadline") is None else ""
            reporter("dispatch_deadline", f"{deadline}{default}",
                     f"longer than maxDispatchDeadlineSeconds ({max_deadline:g}s)",
                     f"set dispatch_deadline to at most \"{max_deadline:g}s\"")
    max_body = number(config.get("maxBodyBytes"))
    found = target(normalized)
    if max_body is not None and found and isinstance(found[1], Mapping):
        field, request = found
        data = body_bytes(request)
        if data is not None and len(data) > max_body:
            key = "body" if request.get("body") is not None else "body_base64"
            reporter(f"{field}.{key}", f"<{len(data)} bytes, redacted>",
                     f"larger than maxBodyBytes ({max_body:g} bytes)",
                     "send a smaller body, e.g. a reference to data in Cloud Storage")


# --- cloudtasks-explicit-task-id -------------------------------------------------------------------

EXPLICIT_TASK_ID = "cloudtasks-explicit-task-id"
EXPLICIT_TASK_ID_SCHEMA: dict[str, dict[str, Any]] = {}
AUTONAME_SUFFIX_LENGTH = 8  # pulumi_cloudtasks.provider.SUFFIX_LENGTH


def looks_autonamed(task_id: str, resource_name: str) -> bool:
    """True when ``task_id`` is what the provider's check generated for ``resource_name``.

    The engine sends a policy the *checked* inputs, where an autonamed task already has a task_id,
    and strips internal keys (``__autonamed``) with ``SkipInternalKeys``; the autoname shape
    ``<resource name>-<8 of [a-z0-9]>`` is what tells the two apart."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", resource_name or "task").strip("-") or "task"
    base = base[:500 - AUTONAME_SUFFIX_LENGTH - 1]
    return re.fullmatch(re.escape(base) + rf"-[a-z0-9]{{{AUTONAME_SUFFIX_LENGTH}}}", task_id) is not None


def check_explicit_task_id(args: Any, report: ReportViolation, _config: Mapping[str, Any]) -> None:
    props = task_props(args)
    if props is None:
        return
    task_id = props.get("task_id")
    if not (isinstance(task_id, str) and known(task_id)):
        return
    if props.get(spec.AUTONAMED_KEY) or looks_autonamed(task_id, getattr(args, "name", "") or ""):
        return
    hours = rules.DEFAULT_NAME_RESERVATION_SECONDS / 3600
    Reporter(args, report, props)(
        "task_id", repr(task_id),
        "an explicit task_id cannot be replaced in place: every change to a task replaces it, and Cloud "
        f"Tasks keeps a deleted or executed task's name reserved (about {hours:g}h, up to a day), so "
        "the replacement fails until the window has passed",
        "remove task_id and let the provider autoname the task (<resource name>-<suffix>), or give a "
        "new task_id with every change")


# --- cloudtasks-stack-task-count -------------------------------------------------------------------

STACK_TASK_COUNT = "cloudtasks-stack-task-count"
STACK_TASK_COUNT_SCHEMA = {
    "maxTasksPerStack": {
        "type": "integer", "minimum": 0, "default": 500,
        "description": "The most Task resources one stack may hold.",
    },
}


def check_stack_task_count(args: Any, report: ReportViolation) -> None:
    config, unknown = config_of(args, STACK_TASK_COUNT_SCHEMA)
    if unknown:
        report_unknown_config(STACK_TASK_COUNT, STACK_TASK_COUNT_SCHEMA, unknown, report)
        return
    limit = int(number(config.get("maxTasksPerStack")) or 0)
    tasks = [r for r in args.resources if r.resource_type == TASK_TYPE_TOKEN]
    if len(tasks) > limit:
        report(f"the stack has {len(tasks)} Task resources ({TASK_TYPE_TOKEN}), more than "
               f"maxTasksPerStack ({limit}): every preview, update and refresh reads each of them. "
               "Fix: split the tasks across stacks, enqueue high-volume work from the application "
               "(google-cloud-tasks client or the cloudtasks CLI) instead of as resources, or raise "
               "maxTasksPerStack in the policy pack config.", None)


POLICIES = [
    resource_policy(SERVICE_LIMITS, "Tasks must be within Cloud Tasks' limits (and the configured tighter maxima).",
                    EnforcementLevel.MANDATORY, SERVICE_LIMITS_SCHEMA, check_service_limits),
    resource_policy(EXPLICIT_TASK_ID,
                    "An explicit task_id blocks replacement for the name reservation window; prefer autonaming.",
                    EnforcementLevel.ADVISORY, EXPLICIT_TASK_ID_SCHEMA, check_explicit_task_id),
    StackValidationPolicy(
        name=STACK_TASK_COUNT,
        description="A stack should hold at most maxTasksPerStack Task resources.",
        enforcement_level=EnforcementLevel.ADVISORY,
        config_schema=PolicyConfigSchema(STACK_TASK_COUNT_SCHEMA),
        validate=check_stack_task_count),
]

__all__ = ["SERVICE_LIMITS", "EXPLICIT_TASK_ID", "STACK_TASK_COUNT", "POLICIES", "check_service_limits",
           "check_explicit_task_id", "check_stack_task_count", "looks_autonamed", "REDACTED"]
