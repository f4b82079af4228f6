"""One HTTP task: `pulumi up` enqueues it once, the worker receives it, `refresh` shows `status: gone`.

Config (all optional): queue, workerUrl, message, apiKey (secret: sent as the X-Api-Key header).
"""
import json

import pulumi
from pulumi_cloudtasks import HttpRequestArgs, Task

config = pulumi.Config()
queue = config.get("queue") or "projects/demo-project/locations/us-central1/queues/examples"
worker_url = config.get("workerUrl") or "http://127.0.0.1:8090"
api_key = config.get_secret("apiKey")  # a secret input stays encrypted in the state

headers = {"Content-Type": "application/json"}
if api_key is not None:
    headers["X-Api-Key"] = api_key

task = Task(
    "hello",
    queue=queue,
    http_request=HttpRequestArgs(
        url=f"{worker_url.rstrip('/')}/hello",
        http_method="POST",
        headers=headers,
        body=json.dumps({"message": config.get("message") or "hello from pulumi"}),
    ),
    dispatch_deadline="60s",
)

pulumi.export("name", task.name)
pulumi.export("task_id", task.task_id)
pulumi.export("status", task.status)
pulumi.export("dispatch_count", task.dispatch_count)
