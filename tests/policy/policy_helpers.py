"""Helpers for the policy tests: build the args pulumi-policy's analyzer builds, collect violations."""
from __future__ import annotations

import warnings
from typing import Any

warnings.filterwarnings("ignore", category=FutureWarning)

from pulumi_policy import (PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions,  # noqa: E402
                           ResourceValidationArgs, StackValidationArgs)
from pulumi_policy.deserialize import deserialize_properties  # noqa: E402
from pulumi_policy.proxy import unknown_checking_proxy  # noqa: E402

from pulumi_cloudtasks.policy import POLICIES, TASK_TYPE_TOKEN  # noqa: E402

QUEUE = "projects/demo/locations/us-central1/queues/jobs"
SA = "tasks@demo.iam.gserviceaccount.com"
SECRET_SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}


def secret(value: Any) -> dict[str, Any]:
    """A value as the engine marshals a secret input (KeepSecrets: true)."""
    return {**SECRET_SIG, "value": value}


def good_props(**changes: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "queue": QUEUE,
        "http_request": {
            "url": "https://worker.example.com/tasks/run",
            "http_method": "POST",
            "headers": {"Content-Type": "application/json"},
            "body": '{"job": 42}',
            "oidc_token": {"service_account_email": SA, "audience": "https://worker.example.com"},
        },
        "dispatch_deadline": "300s",
    }
    props.update(changes)
    return {k: v for k, v in props.items() if v is not None}


def urn(name: str) -> str:
    return f"urn:pulumi:dev::tasks::{TASK_TYPE_TOKEN}::{name}"


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def resource_args(props: dict[str, Any], name: str = "nightly", config: dict | None = None,
                  resource_type: str = TASK_TYPE_TOKEN) -> ResourceValidationArgs:
    """What the analyzer passes to a resource policy (deserialized and unknown-checking props)."""
    wrapped = unknown_checking_proxy(deserialize_properties(props))
    return ResourceValidationArgs(resource_type, wrapped, urn(name), name, _opts(), None, config)


def validate(policy_name: str, props: dict[str, Any], config: dict | None = None,
             name: str = "nightly", resource_type: str = TASK_TYPE_TOKEN) -> list[str]:
    policy = {p.name: p for p in POLICIES}[policy_name]
    messages: list[str] = []
    policy.validate(resource_args(props, name, config, resource_type),
                    lambda message, urn=None: messages.append(message))
    return messages


def validate_stack(count: int, config: dict | None = None, others: int = 0) -> list[str]:
    policy = {p.name: p for p in POLICIES}["cloudtasks-stack-task-count"]
    resources = [PolicyResource(TASK_TYPE_TOKEN, unknown_checking_proxy(good_props()), urn(f"t{i}"),
                                f"t{i}", _opts(), None, None, [], {}) for i in range(count)]
    resources += [PolicyResource("random:index/randomId:RandomId", unknown_checking_proxy({}), urn(f"o{i}"),
                                 f"o{i}", _opts(), None, None, [], {}) for i in range(others)]
    messages: list[str] = []
    policy.validate(StackValidationArgs(resources, config),
                    lambda message, urn=None: messages.append(message))
    return messages
