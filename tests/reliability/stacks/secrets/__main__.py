"""One task whose Authorization and X-Api-Key headers and body are secrets (config values set by
the test, wrapped with ``pulumi.Output.secret`` here), scheduled far ahead; the test runs it."""
import pulumi
from pulumi_cloudtasks import HttpRequestArgs, Task

config = pulumi.Config()
task = Task(
    "secretive",
    queue=config.require("queue"),
    http_request=HttpRequestArgs(
        url=config.require("workerUrl") + "/secret",
        http_method="POST",
        headers={
            "Content-Type": "text/plain",
            "Authorization": pulumi.Output.secret(config.require("authHeader")),
            "X-Api-Key": pulumi.Output.secret(config.require("apiKey")),
        },
        body=pulumi.Output.secret(config.require("body")),
    ),
    schedule_time=config.require("scheduleTime"),
)
pulumi.export("name", task.name)
pulumi.export("http_request", task.http_request)
