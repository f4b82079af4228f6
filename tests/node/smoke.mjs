// Smoke test of the unmodified Node.js @google-cloud/tasks client against the emulator over gRPC.
// Env: CLOUD_TASKS_EMULATOR_HOST=host:port (gRPC), QUEUE (full queue name), WORKER_URL (a 2xx target).
// Prints one JSON line describing what each call returned; exits non-zero on any unexpected error.
import { CloudTasksClient } from '@google-cloud/tasks';
import * as grpc from '@grpc/grpc-js';

const target = process.env.CLOUD_TASKS_EMULATOR_HOST;
const queue = process.env.QUEUE;
const workerUrl = process.env.WORKER_URL;
if (!target || !queue || !workerUrl) {
  console.error('set CLOUD_TASKS_EMULATOR_HOST, QUEUE and WORKER_URL');
  process.exit(2);
}
const sep = target.lastIndexOf(':');
const client = new CloudTasksClient({
  servicePath: target.slice(0, sep),
  port: Number(target.slice(sep + 1)),
  // Insecure channel and no credentials: exactly what a user does to point the client at an emulator.
  sslCreds: grpc.credentials.createInsecure(),
});

const out = {};
try {
  const [q] = await client.createQueue({
    parent: queue.split('/queues/')[0],
    queue: { name: queue },
  });
  out.queue = { name: q.name, state: q.state };

  const body = Buffer.from('hello from node');
  const [created] = await client.createTask({
    parent: queue,
    task: {
      name: `${queue}/tasks/node-task-1`,
      httpRequest: { url: workerUrl, httpMethod: 'POST', body, headers: { 'Content-Type': 'text/plain' } },
      scheduleTime: { seconds: Math.floor(Date.now() / 1000) + 3600 },
    },
    responseView: 'FULL',
  });
  out.created = { name: created.name, view: created.view, body: Buffer.from(created.httpRequest.body).toString() };

  const [got] = await client.getTask({ name: created.name });
  out.got = { name: got.name, view: got.view, hasBody: Boolean(got.httpRequest.body && got.httpRequest.body.length) };

  const [second] = await client.createTask({
    parent: queue,
    task: { httpRequest: { url: workerUrl }, scheduleTime: { seconds: Math.floor(Date.now() / 1000) + 3600 } },
  });
  const [listed] = await client.listTasks({ parent: queue });
  out.listed = listed.map((t) => t.name).sort();

  const [ran] = await client.runTask({ name: created.name });
  out.ran = { name: ran.name, dispatchCount: Number(ran.dispatchCount) };

  await client.deleteTask({ name: second.name });
  out.deleted = second.name;
  try {
    await client.getTask({ name: second.name });
    out.getAfterDelete = 'OK';
  } catch (err) {
    out.getAfterDelete = grpc.status[err.code];
  }
  const [after] = await client.listTasks({ parent: queue });
  out.remaining = after.map((t) => t.name);
  console.log(JSON.stringify(out));
  await client.close();
} catch (err) {
  console.error(JSON.stringify({ error: String(err && err.message), code: err && err.code, partial: out }));
  process.exit(1);
}
