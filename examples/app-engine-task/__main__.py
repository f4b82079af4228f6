"""An App Engine task: Cloud Tasks sends `relative_uri` to the app's service/version.

The emulator sends App Engine tasks to its `--app-engine-url` (default http://127.0.0.1:8080) +
relative_uri, with X-AppEngine-* headers. Config: queue, relativeUri, service.
"""
import pulumi
from pulumi_cloudtasks import AppEngineHttpRequestArgs, AppEngineRoutingArgs, Task

config = pulumi.Config()
queue = config.get("queue") or "projects/demo-project/locations/us-central1/queues/examples"

task = Task(
    "cleanup",
    queue=queue,
    app_engine_http_request=AppEngineHttpRequestArgs(
        relative_uri=config.get("relativeUri") or "/tasks/cleanup",
        http_method="POST",
        headers={"Content-Type": "application/json"},
        body='{"older_than_days": 30}',
        app_engine_routing=AppEngineRoutingArgs(service=config.get("service") or "worker"),
    ),
    dispatch_deadline="300s",
)

pulumi.export("name", task.name)
pulumi.export("task_id", task.task_id)
pulumi.export("status", task.status)
