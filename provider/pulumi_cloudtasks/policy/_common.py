"""Plumbing shared by the rules: selecting Task resources, plain props, config, safe messages.

Two facts about how pulumi-policy 1.21 hands resources to a rule shape this module:

- ``args.props`` is wrapped by ``unknown_checking_proxy``: reading an unknown raises
  ``UnknownValueError`` and the policy is reported as "can't run during preview". ``plain`` reads the
  proxy's raw target instead, so unknowns become ``spec.UNKNOWN_SENTINEL`` and rules skip them.
- the engine marshals inputs with ``KeepSecrets: true`` and pulumi-policy unwraps secrets into plain
  values, so a rule cannot tell a secret from a plain string. Messages therefore never contain header
  values, bodies, URL paths/queries/userinfo, and ``Reporter`` scrubs every such string from a
  message as a second line of defence.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from pulumi_policy import (EnforcementLevel, PolicyConfigSchema, ReportViolation, ResourceValidationPolicy)
from pulumi_policy.proxy import _DictProxy, _ListProxy, _is_unknown
from pulumi_policy.secret import Secret

from .. import TASK_TYPE_TOKEN, spec  # the token Task's dynamic module/name give the resource

UNKNOWN = spec.UNKNOWN_SENTINEL
REDACTED = "<redacted>"


def plain(value: Any) -> Any:
    """Deep copy of policy props as plain dicts/lists; every unknown becomes ``spec.UNKNOWN_SENTINEL``
    (pulumi-policy knows one sentinel per type, the spec model only the string one)."""
    if isinstance(value, (_DictProxy, _ListProxy)):
        value = value["__target"]
    if isinstance(value, Secret):
        value = value.value
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if spec.is_unknown(value) or (isinstance(value, str) and _is_unknown(value)):
        return UNKNOWN
    return value


def known(value: Any) -> bool:
    return value is not None and not spec.is_unknown(value)


def task_props(args: Any) -> dict[str, Any] | None:
    """The plain props of a Task resource, or None for any other resource type."""
    if getattr(args, "resource_type", None) != TASK_TYPE_TOKEN:
        return None
    props = plain(args.props)
    return props if isinstance(props, dict) else {}


def target(props: Mapping[str, Any]) -> tuple[str, Any] | None:
    """``(field, request)`` of the task's target, or None when there is none."""
    for name in spec.TARGETS:
        if props.get(name) is not None:
            return name, props[name]
    return None


def body_bytes(request: Mapping[str, Any]) -> bytes | None:
    """The known body of a request as bytes (None when absent, unknown or undecodable)."""
    body, b64 = request.get("body"), request.get("body_base64")
    if isinstance(body, str) and known(body):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(b64, str) and known(b64):
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL plus a marker for what was left out (path, query and userinfo
    may carry tokens, e.g. webhook URLs, so they are never shown)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return REDACTED
    if not parts.scheme or not host:
        return REDACTED
    rest = "/..." if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def _sensitive(props: Any) -> Iterable[str]:
    """Every string in the props that may be secret: header values, bodies, URL tails."""
    for name in spec.TARGETS:
        request = props.get(name) if isinstance(props, Mapping) else None
        if not isinstance(request, Mapping):
            continue
        headers = request.get("headers")
        if isinstance(headers, Mapping):
            yield from (v for v in headers.values() if isinstance(v, str))
        for key in ("body", "body_base64"):
            if isinstance(request.get(key), str):
                yield request[key]
        data = body_bytes(request)
        if data:
            yield data.decode("utf-8", "replace")
        url = request.get("url")
        if isinstance(url, str):
            parts = urlsplit(url)
            yield from (p for p in (parts.path, parts.query, parts.fragment, parts.password or "",
                                    parts.username or "") if len(p) > 1)


def scrub(text: str, props: Any) -> str:
    """``text`` with every possibly-secret string of ``props`` replaced by ``<redacted>``."""
    for value in sorted(set(_sensitive(props)), key=len, reverse=True):
        if len(value) >= 3 and not spec.is_unknown(value) and value in text:
            text = text.replace(value, REDACTED)
    return text


class Reporter:
    """Formats and reports violations of one resource: names the resource, the property, the value at
    fault (already made safe by the caller) and the fix; scrubs possible secrets."""

    def __init__(self, args: Any, report: ReportViolation, props: Mapping[str, Any]):
        self.args, self._report, self.props, self.count = args, report, props, 0

    def __call__(self, path: str, value: str | None, problem: str, fix: str) -> None:
        what = f"Task {self.args.name!r} ({self.args.urn})"
        shown = f" = {value}" if value is not None else ""
        message = f"{what}: {path}{shown}: {problem.rstrip('.')}. Fix: {fix.rstrip('.')}."
        self.count += 1
        self._report(scrub(message, self.props), None)


# --- config ----------------------------------------------------------------------------------------

def config_of(args: Any, schema: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The policy's config with the schema's defaults filled in (the CLI does this too, a direct
    gRPC client or an in-process test may not), and the keys the schema does not know.

    The pinned CLI only validates types and ``required`` (its JSON schema has no
    ``additionalProperties``), so a misspelt key would otherwise be ignored silently."""
    given = dict(plain(args.get_config() or {}))
    given.pop("enforcementLevel", None)
    unknown = sorted(k for k in given if k not in schema)
    out = {k: v["default"] for k, v in schema.items() if "default" in v}
    out.update({k: v for k, v in given.items() if k in schema and v is not None})
    return out, unknown


def report_unknown_config(policy_name: str, schema: Mapping[str, Any], unknown: list[str],
                          report: ReportViolation) -> None:
    expected = ", ".join(sorted(schema)) or "no keys"
    for key in unknown:
        report(f"policy config of {policy_name!r} has an unknown key {key!r} (expected: {expected}). "
               f"Fix: correct or remove {key!r} in the policy pack config file.", None)


def with_config(policy_name: str, schema: Mapping[str, Mapping[str, Any]],
                rule: Callable[[Any, ReportViolation, dict[str, Any]], None]) -> Callable[..., None]:
    """A pulumi-policy validate function: config checked and defaulted, then ``rule`` runs."""

    def validate(args: Any, report: ReportViolation) -> None:
        config, unknown = config_of(args, schema)
        if unknown:
            report_unknown_config(policy_name, schema, unknown, report)
            return
        rule(args, report, config)

    validate.__name__ = f"validate_{policy_name.replace('-', '_')}"
    return validate


def number(value: Any) -> float | None:
    """A config number (protobuf Struct gives floats) or None when unset."""
    if value is None or isinstance(value, bool):
        return None
    return float(value)


def resource_policy(name: str, description: str, level: EnforcementLevel,
                    schema: Mapping[str, Mapping[str, Any]], check: Callable[..., None]) -> ResourceValidationPolicy:
    """A Task rule as a pulumi-policy resource policy: its config schema checked and defaulted."""
    return ResourceValidationPolicy(name=name, description=description, enforcement_level=level,
                                    config_schema=PolicyConfigSchema(schema),
                                    validate=with_config(name, schema, check))
