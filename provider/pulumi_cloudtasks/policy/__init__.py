"""The policy rules for ``pulumi_cloudtasks.Task`` resources (the pack in ``policy/`` assembles them).

Each rule is a plain function ``check_*(args, report_violation[, config])`` plus a pulumi-policy
``ResourceValidationPolicy`` / ``StackValidationPolicy`` in ``POLICIES``; ``build_policies()`` returns
fresh copies of that list, ``build_pack()`` the ``PolicyPack`` (it serves the analyzer: only call it
from a pack's ``__main__.py``). Rules select resources by ``TASK_TYPE_TOKEN``; service limits are the
spec model's own failures (``spec.normalize``), so the pack and the provider's check agree.

| policy                              | level     | config (default)                                   |
|-------------------------------------|-----------|----------------------------------------------------|
| cloudtasks-https-only               | mandatory | allowHttpHosts (["localhost", "127.0.0.1"])         |
| cloudtasks-authenticated-targets    | mandatory | exemptUrlPrefixes ([])                              |
| cloudtasks-no-static-credentials    | mandatory | -                                                   |
| cloudtasks-allowed-queues           | mandatory | allowedQueues (unset: passes)                       |
| cloudtasks-service-limits           | mandatory | maxScheduleDays, maxDispatchDeadlineSeconds, maxBodyBytes |
| cloudtasks-explicit-task-id         | advisory  | -                                                   |
| cloudtasks-stack-task-count (stack) | advisory  | maxTasksPerStack (500)                              |
"""
from __future__ import annotations

from typing import Any

from pulumi_policy import EnforcementLevel, Policy

from . import limits, security
from ._common import TASK_TYPE_TOKEN, plain, scrub
from .limits import (EXPLICIT_TASK_ID, SERVICE_LIMITS, STACK_TASK_COUNT, check_explicit_task_id,
                     check_service_limits, check_stack_task_count, looks_autonamed)
from .security import (ALLOWED_QUEUES, AUTHENTICATED, HTTPS_ONLY, NO_STATIC_CREDENTIALS,
                       body_credentials, check_allowed_queues, check_authenticated_targets,
                       check_https_only, check_no_static_credentials, credential_header, queue_allowed)

PACK_NAME = "pulumi-cloudtasks"
POLICIES: list[Policy] = [*security.POLICIES, *limits.POLICIES]
POLICY_NAMES = [p.name for p in POLICIES]


def build_policies() -> list[Policy]:
    """The pack's policies (the same objects each time: they hold no state)."""
    return list(POLICIES)


def build_pack(name: str = PACK_NAME, **kwargs: Any) -> Any:
    """Build the ``PolicyPack``; this starts the analyzer's gRPC server and blocks (pulumi-policy's
    PolicyPack constructor serves), so it belongs in a pack's ``__main__.py`` only."""
    from pulumi_policy import PolicyPack

    kwargs.setdefault("enforcement_level", EnforcementLevel.ADVISORY)
    return PolicyPack(name=name, policies=build_policies(), **kwargs)


__all__ = ["TASK_TYPE_TOKEN", "PACK_NAME", "POLICIES", "POLICY_NAMES", "build_policies", "build_pack",
           "HTTPS_ONLY", "AUTHENTICATED", "NO_STATIC_CREDENTIALS", "ALLOWED_QUEUES", "SERVICE_LIMITS",
           "EXPLICIT_TASK_ID", "STACK_TASK_COUNT", "check_https_only", "check_authenticated_targets",
           "check_no_static_credentials", "check_allowed_queues", "check_service_limits",
           "check_explicit_task_id", "check_stack_task_count", "looks_autonamed", "queue_allowed",
           "credential_header", "body_credentials", "plain", "scrub"]
