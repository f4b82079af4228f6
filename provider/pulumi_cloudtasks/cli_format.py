"""Output of the ``cloudtasks`` CLI: task and queue records, secret redaction, tables and JSON.

Tasks are rendered through the same output field model as the provider (``spec.outputs_from_api``),
so ``cloudtasks tasks describe --format json`` and a resource's outputs agree field for field.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Sequence, TextIO

import yaml
from google.cloud import tasks_v2
from google.protobuf.json_format import MessageToDict

from cloudtasks_emulator.core import rules

from . import spec as taskspec

MASK = "********"
# Header names whose values are credentials; matched case-insensitively, also as substrings.
_SECRET_HEADER_WORDS = ("authorization", "cookie", "token", "secret", "api-key", "apikey", "password",
                        "signature", "credential", "session")


def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_HEADER_WORDS)


def task_record(task: tasks_v2.Task, spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """JSON-safe outputs of ``task`` in the provider's field model (``spec`` = what was asked for,
    default: what the service stored); internal bookkeeping keys are dropped."""
    given = spec if spec is not None else taskspec.spec_from_api(task)
    out = taskspec.outputs_from_api(given, task)
    return {k: v for k, v in out.items() if k not in taskspec.HIDDEN_FIELDS}


def redact(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without request bodies and with credential-like header values masked."""
    out = dict(record)
    for target in taskspec.TARGETS:
        request = out.get(target)
        if not isinstance(request, Mapping):
            continue
        request = {k: v for k, v in request.items() if k not in ("body", "body_base64")}
        request["headers"] = {k: MASK if is_secret_header(k) else v
                              for k, v in request.get("headers", {}).items()}
        out[target] = request
    return out


def queue_record(queue: tasks_v2.Queue) -> dict[str, Any]:
    return MessageToDict(tasks_v2.Queue.pb(queue), preserving_proto_field_name=True)


# --- rendering -----------------------------------------------------------------------------------

def write_json(out: TextIO, value: Any) -> None:
    json.dump(value, out, indent=2, sort_keys=False)
    out.write("\n")


def write_yaml(out: TextIO, value: Mapping[str, Any]) -> None:
    """The human form of one resource (as ``gcloud ... describe`` prints it)."""
    out.write(yaml.safe_dump(dict(value), sort_keys=False, default_flow_style=False, allow_unicode=True))


def write_table(out: TextIO, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")


TASK_COLUMNS = ("TASK_NAME", "TYPE", "STATUS", "CREATE_TIME", "SCHEDULE_TIME", "DISPATCH_COUNT",
                "RESPONSE_COUNT", "LAST_ATTEMPT_STATUS")


def task_row(record: Mapping[str, Any]) -> list[Any]:
    kind = "HTTP" if "http_request" in record else "APP_ENGINE" if "app_engine_http_request" in record else "?"
    last = (record.get("last_attempt") or {}).get("response_status")
    status = f"{last['code']} {last.get('message', '')}".strip() if last else "Unknown"
    return [record.get("task_id") or rules.short_id(record.get("name", "")), kind, record.get("status"),
            record.get("create_time"), record.get("schedule_time"), record.get("dispatch_count", 0),
            record.get("response_count", 0), status]


QUEUE_COLUMNS = ("QUEUE_NAME", "STATE", "MAX_DISPATCHES_PER_SECOND", "MAX_CONCURRENT_DISPATCHES",
                 "MAX_ATTEMPTS", "MIN_BACKOFF", "MAX_BACKOFF")


def queue_row(record: Mapping[str, Any]) -> list[Any]:
    rates, retry = record.get("rate_limits", {}), record.get("retry_config", {})
    return [rules.short_id(record.get("name", "")), record.get("state", "STATE_UNSPECIFIED"),
            rates.get("max_dispatches_per_second"), rates.get("max_concurrent_dispatches"),
            retry.get("max_attempts"), retry.get("min_backoff"), retry.get("max_backoff")]
