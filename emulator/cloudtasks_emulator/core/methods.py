"""The RPCs of google.cloud.tasks.v2.CloudTasks with their raw protobuf request/response classes.

Both adapters (gRPC, REST) are built from this one table; the core's service implements each RPC
as ``CloudTasksService.<snake_case name>(request) -> response``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from google.cloud import tasks_v2
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import empty_pb2
from google.protobuf.message import Message

SERVICE_NAME = "google.cloud.tasks.v2.CloudTasks"


@dataclass(frozen=True)
class Method:
    name: str  # RPC name, e.g. "CreateTask"
    request: type[Message]
    response: type[Message]

    @property
    def python_name(self) -> str:
        """``CreateTask`` -> ``create_task``: the service method implementing the RPC."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()


def _pb(proto_plus_type) -> type[Message]:
    return proto_plus_type.pb()


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("ListQueues", _pb(tasks_v2.ListQueuesRequest), _pb(tasks_v2.ListQueuesResponse)),
        Method("GetQueue", _pb(tasks_v2.GetQueueRequest), _pb(tasks_v2.Queue)),
        Method("CreateQueue", _pb(tasks_v2.CreateQueueRequest), _pb(tasks_v2.Queue)),
        Method("UpdateQueue", _pb(tasks_v2.UpdateQueueRequest), _pb(tasks_v2.Queue)),
        Method("DeleteQueue", _pb(tasks_v2.DeleteQueueRequest), empty_pb2.Empty),
        Method("PurgeQueue", _pb(tasks_v2.PurgeQueueRequest), _pb(tasks_v2.Queue)),
        Method("PauseQueue", _pb(tasks_v2.PauseQueueRequest), _pb(tasks_v2.Queue)),
        Method("ResumeQueue", _pb(tasks_v2.ResumeQueueRequest), _pb(tasks_v2.Queue)),
        Method("GetIamPolicy", iam_policy_pb2.GetIamPolicyRequest, policy_pb2.Policy),
        Method("SetIamPolicy", iam_policy_pb2.SetIamPolicyRequest, policy_pb2.Policy),
        Method("TestIamPermissions", iam_policy_pb2.TestIamPermissionsRequest, iam_policy_pb2.TestIamPermissionsResponse),
        Method("ListTasks", _pb(tasks_v2.ListTasksRequest), _pb(tasks_v2.ListTasksResponse)),
        Method("GetTask", _pb(tasks_v2.GetTaskRequest), _pb(tasks_v2.Task)),
        Method("CreateTask", _pb(tasks_v2.CreateTaskRequest), _pb(tasks_v2.Task)),
        Method("DeleteTask", _pb(tasks_v2.DeleteTaskRequest), empty_pb2.Empty),
        Method("RunTask", _pb(tasks_v2.RunTaskRequest), _pb(tasks_v2.Task)),
    ]
}
