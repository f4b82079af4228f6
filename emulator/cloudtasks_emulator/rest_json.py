"""Strict proto3-JSON decoding for the REST adapter: errors that name the field, like Google's.

``json_format.ParseDict`` alone is too lenient for an emulator whose job is to catch client bugs
early: it takes ``[]`` for a message, any number for an open enum and non-base64 text for bytes, and
its messages describe the parser rather than the field. So a request is first checked here against
the message descriptor, then handed to ``ParseDict`` for the actual conversion (which still range-
checks integers and parses timestamps/durations/field masks).
"""
from __future__ import annotations

import re
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

# Well-known types whose JSON form is a string (checked by ParseDict itself).
_STRING_WKT = {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
# Well-known types whose JSON form is free-form; left entirely to ParseDict.
_FREEFORM_WKT = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.Any"}
_WRAPPER_PREFIX = "google.protobuf."
_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")
_INT_TYPES = {
    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SFIXED64,
}
_FLOAT_TYPES = {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE}
MAX_DEPTH = 32


class JsonError(ValueError):
    """A request that cannot be decoded; the message is the one returned with INVALID_ARGUMENT."""


def _prefix(path: str) -> str:
    return f" at '{path}'" if path else ""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def find_field(desc: Descriptor, key: str) -> FieldDescriptor | None:
    return desc.fields_by_name.get(key) or next((f for f in desc.fields if f.json_name == key), None)


def check_message(desc: Descriptor, value: Any, path: str = "", depth: int = 0) -> None:
    """Raise JsonError naming the first field whose JSON does not fit the descriptor."""
    if depth > MAX_DEPTH:
        raise JsonError(f"Invalid JSON payload received. Nesting too deep{_prefix(path)}.")
    if not isinstance(value, dict):
        raise JsonError(
            f"Invalid JSON payload received. Expected an object{_prefix(path)}, got {_kind(value)}."
        )
    seen: set[str] = set()
    for key, item in value.items():
        field = find_field(desc, key)
        if field is None:
            raise JsonError(f'Invalid JSON payload received. Unknown name "{key}"{_prefix(path)}: Cannot find field.')
        if field.name in seen:
            raise JsonError(f"Invalid JSON payload received. Field '{field.name}' given twice{_prefix(path)}.")
        seen.add(field.name)
        if item is None:
            continue  # proto3 JSON: null means "default"
        sub = f"{path}.{field.name}" if path else field.name
        _check_field(field, item, sub, depth)


def _is_map(field: FieldDescriptor) -> bool:
    mt = field.message_type
    return mt is not None and mt.GetOptions().map_entry


def _check_field(field: FieldDescriptor, value: Any, path: str, depth: int) -> None:
    if _is_map(field):
        if not isinstance(value, dict):
            raise JsonError(f"Invalid value at '{path}' ({_kind(value)}): expected an object (a map).")
        value_field = field.message_type.fields_by_name["value"]
        for k, v in value.items():
            _check_single(value_field, v, f"{path}[{k!r}]", depth)
        return
    if field.label == FieldDescriptor.LABEL_REPEATED:
        if not isinstance(value, list):
            raise JsonError(f"Invalid value at '{path}' ({_kind(value)}): expected an array.")
        for i, v in enumerate(value):
            _check_single(field, v, f"{path}[{i}]", depth)
        return
    _check_single(field, value, path, depth)


def _check_single(field: FieldDescriptor, value: Any, path: str, depth: int) -> None:
    t = field.type
    bad = f"Invalid value at '{path}' ({_kind(value)})"
    if t == FieldDescriptor.TYPE_MESSAGE:
        full = field.message_type.full_name
        if full in _STRING_WKT:
            if not isinstance(value, str):
                raise JsonError(f"{bad}: expected a string ({full.split('.')[-1]}).")
        elif full in _FREEFORM_WKT or (full.startswith(_WRAPPER_PREFIX) and full.endswith("Value")):
            return
        else:
            check_message(field.message_type, value, path, depth + 1)
    elif t == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        if isinstance(value, str) and value in enum.values_by_name:
            return
        if isinstance(value, int) and not isinstance(value, bool) and value in enum.values_by_number:
            return
        names = ", ".join(enum.values_by_name)
        raise JsonError(f"Invalid value at '{path}' ({enum.full_name}), {value!r}: expected one of {names}.")
    elif t == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            raise JsonError(f"{bad}: expected a string.")
    elif t == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise JsonError(f"{bad}: expected true or false.")
    elif t == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str) or not _BASE64.match(value):
            raise JsonError(f"{bad}: expected base64-encoded bytes.")
    elif t in _INT_TYPES:
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        ) or (isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip() or "x") is not None)
        if not ok:
            raise JsonError(f"{bad}: expected an integer.")
    elif t in _FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise JsonError(f"{bad}: expected a number.")


def parse_into(value: Any, message: Message, path: str = "") -> None:
    """Check then merge ``value`` (decoded JSON) into ``message``; JsonError on any mismatch."""
    check_message(message.DESCRIPTOR, value, path)
    try:
        json_format.ParseDict(value, message, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        # ParseDict's own message already names the field (e.g. an int out of range or a malformed
        # timestamp); keep only its first line, the rest lists every field of the message.
        first = str(exc).splitlines()[0] if str(exc) else "malformed value"
        raise JsonError(f"Invalid JSON payload received. {first}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise JsonError(f"Invalid JSON payload received{_prefix(path)}: {exc}") from None


def query_value(field: FieldDescriptor, raw: str) -> Any:
    """A query-string value in the JSON form ParseDict expects for ``field``."""
    if field.type == FieldDescriptor.TYPE_BOOL:
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        return raw  # rejected by check_message with the field's name
    if field.type == FieldDescriptor.TYPE_ENUM and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    return raw


def query_to_dict(desc: Descriptor, params: dict[str, list[str]]) -> dict[str, Any]:
    """Bind ``a.b=v`` query parameters to the request message, Google-style (non-repeated scalars,
    repeated scalars by repetition, and string-form well-known types)."""
    out: dict[str, Any] = {}
    for key, values in params.items():
        node, cur_desc, parts = out, desc, key.split(".")
        for i, part in enumerate(parts):
            field = find_field(cur_desc, part) if cur_desc is not None else None
            if field is None:
                raise JsonError(
                    f'Invalid JSON payload received. Unknown name "{key}": Cannot bind query parameter. '
                    f"Field '{part}' could not be found in request message."
                )
            last = i == len(parts) - 1
            is_msg = field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name not in _STRING_WKT
            if not last:
                if not is_msg or field.label == FieldDescriptor.LABEL_REPEATED or _is_map(field):
                    raise JsonError(f'Invalid JSON payload received. Cannot bind query parameter "{key}".')
                node = node.setdefault(field.json_name, {})
                cur_desc = field.message_type
                continue
            if is_msg or _is_map(field):
                raise JsonError(
                    f'Invalid JSON payload received. Cannot bind query parameter "{key}": '
                    f"'{field.name}' is a message; set its fields instead."
                )
            if field.label == FieldDescriptor.LABEL_REPEATED:
                node[field.json_name] = [query_value(field, v) for v in values]
            else:
                if len(values) > 1:
                    raise JsonError(f"Invalid JSON payload received. Repeated query parameter \"{key}\" is not a list.")
                node[field.json_name] = query_value(field, values[0])
    return out
