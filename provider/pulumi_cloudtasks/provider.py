"""``TaskProvider``: the dynamic provider of ``pulumi_cloudtasks.Task`` on top of the spec model.

The provider object is pickled into every resource's ``__provider`` property, so it holds no state at
all: the client lives in ``client.py``'s process-wide cache and the emulator setting in a module
global filled by ``configure``. dill pickles this importable class by reference, which keeps
``__provider`` small.
"""
from __future__ import annotations

import re
import secrets
from typing import Any, Mapping

from cloudtasks_emulator.core import rules
from google.api_core import exceptions
from google.cloud import tasks_v2
from pulumi.dynamic import (CheckFailure, CheckResult, ConfigureRequest, CreateResult, DiffResult,
                            ReadResult, ResourceProvider, UpdateResult)

from . import client, spec

SUFFIX_LENGTH = 8
PROVIDER_KEY = "__provider"


def autoname(resource_name: str | None) -> str:
    """``<resource name>-<random suffix>`` within the task ID alphabet and length."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", resource_name or "task").strip("-") or "task"
    suffix = "".join(secrets.choice(rules.TASK_ID_ALPHABET) for _ in range(SUFFIX_LENGTH))
    return f"{base[:500 - SUFFIX_LENGTH - 1]}-{suffix}"


def reservation_message(task_id: str, fields: list[str]) -> str:
    return (
        f"changing {', '.join(fields)} replaces the task, but task_id {task_id!r} stays the same: Cloud Tasks "
        "reserves a task's name after it is deleted or has run (about an hour, up to a day), so the new "
        "task could not be created under it. Give a new task_id, or remove task_id to let the provider "
        "generate a fresh name on every replacement."
    )


class TaskProvider(ResourceProvider):
    # The serialized provider holds no secrets (no client, no credentials): keep it readable.
    serialize_as_secret_always = False

    def configure(self, req: ConfigureRequest) -> None:
        client.set_emulator_host(req.config.get(client.CONFIG_KEY))

    # --- check / diff ------------------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        olds = _olds or {}
        new_spec, failures = spec.normalize(news)
        inputs: dict[str, Any] = dict(new_spec)
        for key in (spec.NAME_KEY,):
            if key in news:
                inputs[key] = news[key]
        if "task_id" not in new_spec and not failures:
            old_spec = spec.normalize(olds)[0] if olds.get("task_id") else {}
            keep = bool(olds.get(spec.AUTONAMED_KEY)) and old_spec and not spec.changed_fields(
                {**old_spec, "task_id": None}, {**new_spec, "task_id": None})
            inputs["task_id"] = old_spec["task_id"] if keep else autoname(news.get(spec.NAME_KEY))
            inputs[spec.AUTONAMED_KEY] = True
        elif "task_id" in new_spec and olds.get("task_id") == new_spec["task_id"] and not olds.get(spec.AUTONAMED_KEY):
            # Known changes only: an unknown in preview may turn out unchanged.
            old_spec = spec.normalize(olds)[0]
            changed = [f for f in spec.changed_fields(old_spec, new_spec)
                       if not spec.contains_unknowns(new_spec.get(f)) and f != "task_id"]
            if old_spec and changed:
                failures.append(("task_id", reservation_message(new_spec["task_id"], changed)))
        return CheckResult(inputs, [CheckFailure(p, r) for p, r in failures])

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> DiffResult:
        # olds are the stored outputs; news the checked inputs. Hidden keys and outputs never count.
        old_spec = spec.spec_from_state(_olds)
        new_spec = spec.normalize(_news)[0]
        changed = spec.changed_fields(old_spec, new_spec)
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)

    # --- CRUD --------------------------------------------------------------------------------------

    def create(self, props: dict[str, Any]) -> CreateResult:
        # The engine only creates what check accepted, so the service rules are not applied again
        # (that would double the provider's share of a create); the service still has the last word.
        task_spec, failures = spec.normalize(props, check_rules=False)
        if failures:
            raise ValueError("; ".join(f"{p}: {r}" for p, r in failures))
        message = spec.to_api_task(task_spec)
        try:
            created = client.create_task(task_spec["queue"], message)
        except exceptions.AlreadyExists as exc:
            created = self._adopt(task_spec, message.name, exc)
        return CreateResult(created.name, self._outputs(task_spec, created, props))

    def _adopt(self, task_spec: Mapping[str, Any], name: str, error: Exception) -> tasks_v2.Task:
        """ALREADY_EXISTS for our own name: a retry after a lost reply, or a reserved/foreign name."""
        try:
            existing = self._get(name)
        except exceptions.NotFound:
            raise RuntimeError(
                f"task {name} cannot be created: {error.message if hasattr(error, 'message') else error}. "
                "A task with this name ran or was deleted recently and Cloud Tasks reserves the name "
                "(about an hour, up to a day): use another task_id, or leave task_id unset."
            ) from error
        mismatches = spec.api_mismatches(task_spec, existing)
        if mismatches:
            raise RuntimeError(
                f"task {name} already exists with a different {', '.join(mismatches)}; it is not the "
                "task this resource describes. Use another task_id, or delete the existing task."
            ) from error
        return existing

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        state_spec = spec.spec_from_state(props) if props.get("queue") else {}
        try:
            task = self._get(id_)
        except exceptions.NotFound:
            if not state_spec:  # Task.get of a task that does not exist
                return ReadResult(None, {})
            # It ran or was removed: keep it (a refresh then up must never re-enqueue it).
            return ReadResult(id_, self._outputs(state_spec, None, props))
        if not state_spec:  # import: the stored task is the spec
            state_spec = spec.spec_from_api(task)
            if rules.TASK_NAME_RE.fullmatch(id_):
                state_spec["queue"], state_spec["task_id"] = rules.split_task_name(id_)
        return ReadResult(task.name or id_, self._outputs(state_spec, task, props))

    def update(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> UpdateResult:
        # Only reached when nothing in the spec changed (diff replaces on every spec change): keep
        # every output and take the (equal) spec and bookkeeping of the new inputs.
        outs = {k: v for k, v in _olds.items() if k != PROVIDER_KEY}
        outs.update({k: v for k, v in _news.items() if k != PROVIDER_KEY})
        return UpdateResult(outs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        try:
            client.delete_task(_id)
        except exceptions.NotFound:
            pass  # it already ran or was removed: the goal is reached

    # --- helpers -----------------------------------------------------------------------------------

    @staticmethod
    def _get(name: str) -> tasks_v2.Task:
        try:
            return client.get_task(name, tasks_v2.Task.View.FULL)
        except exceptions.PermissionDenied:  # no cloudtasks.tasks.fullView: bodies are omitted
            return client.get_task(name, tasks_v2.Task.View.BASIC)

    @staticmethod
    def _outputs(task_spec: Mapping[str, Any], task: tasks_v2.Task | None,
                 props: Mapping[str, Any]) -> dict[str, Any]:
        outs = spec.outputs_from_api(task_spec, task, previous=props)
        for key in (spec.NAME_KEY, spec.AUTONAMED_KEY):
            if key in props:
                outs[key] = props[key]
        return outs
