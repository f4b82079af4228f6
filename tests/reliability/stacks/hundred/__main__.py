"""``count`` tasks (default 100) in ``queue``, all scheduled at ``scheduleTime`` so none dispatches
during the test; each has a distinct URL so duplicates in the queue are recognisable."""
import pulumi
from pulumi_cloudtasks import HttpRequestArgs, Task

config = pulumi.Config()
queue = config.require("queue")
count = config.get_int("count") or 100
schedule_time = config.require("scheduleTime")
url = config.get("workerUrl") or "http://127.0.0.1:1"

names = []
for i in range(count):
    task = Task(
        f"t{i:03d}",
        queue=queue,
        http_request=HttpRequestArgs(url=f"{url}/hundred/{i}", headers={"X-Index": str(i)}, body=f"task {i}"),
        schedule_time=schedule_time,
    )
    names.append(task.name)

pulumi.export("names", pulumi.Output.all(*names))
