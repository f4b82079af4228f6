"""Fault injection: make the emulator misbehave on purpose, per RPC, to prove callers converge.

Rules are keyed by RPC name (``CreateTask``) or ``*`` (every RPC); a method's own rule overrides the
``*`` rule field by field. Each rule has
- ``error``: probability of failing *before* doing anything, with ``code``;
- ``latency``: added delay before the call;
- ``commit_then_fail``: probability of failing *after* the change was committed — the case where a
  create succeeded but the caller never heard, which is what makes idempotent retries necessary.

Start-up spec (``--faults``): comma-separated ``METHOD:key=value[:key=value…]`` entries, plus an
optional ``seed=N`` entry, e.g. ``CreateTask:error=0.2:code=UNAVAILABLE,*:latency=50ms,seed=7``.
JSON (admin endpoint): ``{"seed": 7, "rules": {"CreateTask": {"error": 0.2, "code": "UNAVAILABLE",
"latency": "50ms", "commit_then_fail": 0.1}}}``. Off by default: no rules, no effect.
"""
from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import grpc

from ..handler_pool import sleep as handler_sleep
from .errors import ApiError

ALLOWED_CODES = ("UNAVAILABLE", "INTERNAL", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED")
_RULE_KEYS = ("error", "code", "latency", "commit_then_fail")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")


def parse_latency(value: Any) -> float:
    """Seconds from ``50ms``, ``0.5s``, ``2`` (seconds) or a JSON number (seconds)."""
    if isinstance(value, bool):
        raise ValueError(f"latency must be a duration like '50ms' or '0.5s', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"latency must be a duration like '50ms' or '0.5s', got {value!r}")
        seconds = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    if not 0 <= seconds <= 300:
        raise ValueError(f"latency must be between 0 and 300s, got {value!r}")
    return seconds


def _parse_rate(key: str, value: Any) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        rate = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a probability between 0 and 1, got {value!r}") from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{key} must be a probability between 0 and 1, got {value!r}")
    return rate


@dataclass
class FaultRule:
    error: float | None = None
    code: str | None = None
    latency: float | None = None
    commit_then_fail: float | None = None

    @classmethod
    def from_mapping(cls, method: str, raw: dict[str, Any]) -> "FaultRule":
        if not isinstance(raw, dict):
            raise ValueError(f"fault rule for {method!r} must be an object")
        unknown = sorted(set(raw) - set(_RULE_KEYS))
        if unknown:
            raise ValueError(f"unknown fault setting {unknown[0]!r} for {method!r}; known: {', '.join(_RULE_KEYS)}")
        rule = cls()
        if raw.get("error") is not None:
            rule.error = _parse_rate("error", raw["error"])
        if raw.get("commit_then_fail") is not None:
            rule.commit_then_fail = _parse_rate("commit_then_fail", raw["commit_then_fail"])
        if raw.get("latency") is not None:
            rule.latency = parse_latency(raw["latency"])
        if raw.get("code") is not None:
            code = str(raw["code"]).upper()
            if code not in ALLOWED_CODES:
                raise ValueError(f"code must be one of {', '.join(ALLOWED_CODES)}, got {raw['code']!r}")
            rule.code = code
        return rule

    def overlay(self, other: "FaultRule") -> "FaultRule":
        """This rule with ``other``'s set fields on top."""
        return FaultRule(
            error=other.error if other.error is not None else self.error,
            code=other.code if other.code is not None else self.code,
            latency=other.latency if other.latency is not None else self.latency,
            commit_then_fail=other.commit_then_fail if other.commit_then_fail is not None else self.commit_then_fail,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.error is not None:
            out["error"] = self.error
        if self.code is not None:
            out["code"] = self.code
        if self.latency is not None:
            out["latency"] = f"{round(self.latency * 1000, 3):g}ms"
        if self.commit_then_fail is not None:
            out["commit_then_fail"] = self.commit_then_fail
        return out


@dataclass
class _Counters:
    calls: int = 0
    errors: int = 0
    commit_then_fail: int = 0
    delayed: int = 0


@dataclass
class FaultConfig:
    rules: dict[str, FaultRule] = field(default_factory=dict)
    seed: int = 0


def parse_spec(spec: str, known_methods: set[str] | None = None) -> FaultConfig:
    """Parse the start-up string form; repeated methods merge (later settings win)."""
    config = FaultConfig()
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        if entry.startswith("seed="):
            config.seed = _parse_seed(entry[len("seed="):])
            continue
        method, _, rest = entry.partition(":")
        method = method.strip()
        _check_method(method, known_methods)
        raw: dict[str, Any] = {}
        for setting in filter(None, (s.strip() for s in rest.split(":"))):
            key, eq, value = setting.partition("=")
            if not eq:
                raise ValueError(f"fault setting {setting!r} for {method!r} must be key=value")
            raw[key.strip()] = value.strip()
        if not raw:
            raise ValueError(f"fault entry {entry!r} has no settings")
        new = FaultRule.from_mapping(method, raw)
        config.rules[method] = config.rules.get(method, FaultRule()).overlay(new)
    return config


def parse_json(doc: Any, known_methods: set[str] | None = None) -> FaultConfig:
    if not isinstance(doc, dict):
        raise ValueError("fault configuration must be a JSON object")
    unknown = sorted(set(doc) - {"seed", "rules"})
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} in fault configuration; known: seed, rules")
    rules = doc.get("rules", {})
    rules = {} if rules is None else rules
    if not isinstance(rules, dict):
        raise ValueError("rules must be an object keyed by RPC name or '*'")
    config = FaultConfig(seed=_parse_seed(doc.get("seed", 0)))
    for method, raw in rules.items():
        _check_method(method, known_methods)
        config.rules[method] = FaultRule.from_mapping(method, raw)
    return config


def _parse_seed(value: Any) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"seed must be an integer, got {value!r}") from None


def _check_method(method: str, known_methods: set[str] | None) -> None:
    if not method:
        raise ValueError("fault entry needs a method name or '*'")
    if method != "*" and known_methods is not None and method not in known_methods:
        raise ValueError(f"unknown RPC {method!r} in fault configuration")


def _default_known_methods() -> set[str]:
    from .methods import METHODS

    return set(METHODS)


class FaultInjector:
    """Thread-safe; each RPC has its own RNG seeded from (seed, RPC) so a sequence of calls to one
    method is reproducible even when other methods are called concurrently."""

    def __init__(self, config: FaultConfig | None = None, sleep: Callable[[float], None] = handler_sleep) -> None:
        self._sleep = sleep
        self._lock = threading.Lock()
        self._config = FaultConfig()
        self._rngs: dict[str, random.Random] = {}
        self._counters: dict[str, _Counters] = {}
        if config is not None:
            self.configure(config)

    @classmethod
    def from_spec(cls, spec: str | None, **kwargs: Any) -> "FaultInjector":
        return cls(parse_spec(spec, _default_known_methods()) if spec else None, **kwargs)

    def configure(self, config: FaultConfig) -> None:
        """Replace the rules; RNGs and counters restart so a new configuration is reproducible."""
        with self._lock:
            self._config = config
            self._rngs.clear()
            self._counters.clear()

    def configure_json(self, doc: Any) -> None:
        self.configure(parse_json(doc, _default_known_methods()))

    def clear(self) -> None:
        self.configure(FaultConfig())

    @property
    def enabled(self) -> bool:
        return bool(self._config.rules)

    def _rule_for(self, method: str) -> FaultRule | None:
        rules = self._config.rules
        if not rules:
            return None
        base, own = rules.get("*"), rules.get(method)
        if base is None:
            return own
        return base if own is None else base.overlay(own)

    def _draw(self, method: str, rate: float | None) -> bool:
        # Called with the lock held. A draw happens whenever a rate is configured (even 0 or 1), so
        # the sequence for a method depends only on its own call order.
        if rate is None:
            return False
        rng = self._rngs.get(method)
        if rng is None:
            rng = self._rngs[method] = random.Random(f"{self._config.seed}:{method}")
        return rng.random() < rate

    def _counter(self, method: str) -> _Counters:
        c = self._counters.get(method)
        if c is None:
            c = self._counters[method] = _Counters()
        return c

    def before_call(self, method: str) -> None:
        """Add latency, then maybe fail before the service does anything."""
        if not self._config.rules:  # off (the default): no lock on every call
            return
        with self._lock:
            rule = self._rule_for(method)
            if rule is None:
                return
            counter = self._counter(method)
            counter.calls += 1
            fail = self._draw(method, rule.error)
            if fail:
                counter.errors += 1
            if rule.latency:
                counter.delayed += 1
        if rule.latency:
            # Outside the lock, and on a gRPC handler thread its slot goes to another call meanwhile:
            # a slow method must not stall the others.
            self._sleep(rule.latency)
        if fail:
            raise self._error(rule, method, "before the call")

    def after_commit(self, method: str) -> None:
        """Maybe fail the reply of a call whose change is already committed."""
        if not self._config.rules:
            return
        with self._lock:
            rule = self._rule_for(method)
            if rule is None or not self._draw(method + "#commit", rule.commit_then_fail):
                return
            self._counter(method).commit_then_fail += 1
        raise self._error(rule, method, "after the change was committed")

    @staticmethod
    def _error(rule: FaultRule, method: str, when: str) -> ApiError:
        code = rule.code or "UNAVAILABLE"
        return ApiError(getattr(grpc.StatusCode, code), f"Injected fault ({code}) in {method} {when}.")

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "enabled": bool(self._config.rules),
                "seed": self._config.seed,
                "rules": {m: r.to_json() for m, r in sorted(self._config.rules.items())},
                "counters": {
                    m: {"calls": c.calls, "errors": c.errors, "commit_then_fail": c.commit_then_fail, "delayed": c.delayed}
                    for m, c in sorted(self._counters.items())
                },
            }
