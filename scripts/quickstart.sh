#!/usr/bin/env bash
# The README's main command: set everything up (scripts/setup.sh), start the Cloud Tasks emulator and
# the sample workers, and walk the root quickstart stack (Pulumi.yaml + __main__.py) through the real
# Pulumi CLI: up -> the immediate task reaches the worker -> refresh (status, dispatch_count) ->
# a trigger change (up replaces the task) -> destroy. Stops everything it started; exit code 0.
#
#   bash scripts/quickstart.sh            # QUICKSTART_KEEP=1 keeps the run folder (logs, records)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/scripts/setup.sh"
cd "$ROOT"

STACK=quickstart
QUEUE=projects/quickstart/locations/us-central1/queues/quickstart
DEADLINE_SECONDS=${QUICKSTART_DEADLINE_SECONDS:-60}
RUN="$(mktemp -d "${TMPDIR:-/tmp}/cloudtasks-quickstart.XXXXXX")"
START=$SECONDS
PIDS=()

step() { printf '\n\033[1;36m### %s\033[0m\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf '\033[1;31mquickstart failed: %s\033[0m\n' "$*" >&2; exit 1; }

cleanup() {
  local code=$?
  set +e
  if pulumi stack ls --json 2>/dev/null | grep -q "\"name\": \"$STACK\""; then
    if [ "$code" -ne 0 ]; then  # destroy did not run: the emulator's state goes away with it anyway
      pulumi stack rm --yes --force "$STACK" >/dev/null 2>&1
    fi
  fi
  rm -f "$ROOT/Pulumi.$STACK.yaml"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [ "$code" -ne 0 ]; then
    printf 'logs kept in %s (emulator.log, worker-*.log, *.jsonl)\n' "$RUN" >&2
  elif [ -z "${QUICKSTART_KEEP:-}" ]; then
    rm -rf "$RUN"
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for_line FILE REGEX WHAT: the first line of FILE matching REGEX, within the deadline.
wait_for_line() {
  local file=$1 regex=$2 what=$3 end=$((SECONDS + 30)) line
  while [ $SECONDS -lt $end ]; do
    line=$(grep -m1 -E "$regex" "$file" 2>/dev/null || true)
    if [ -n "$line" ]; then printf '%s\n' "$line"; return 0; fi
    sleep 0.2
  done
  die "$what did not start within 30 s (see $file)"
}

# wait_for_request RECORD TASK_ID [STATUS [oidc]]: poll the worker's JSONL record (one line per
# request) until TASK_ID got an answer STATUS (default 200), within the deadline.
wait_for_request() {
  python - "$1" "$2" "${3:-200}" "${4:-}" "$DEADLINE_SECONDS" <<'EOF'
import json, sys, time
record, task_id, status, want_oidc, limit = sys.argv[1:6]
deadline = time.monotonic() + float(limit)
while time.monotonic() < deadline:
    try:
        lines = open(record, encoding="utf-8").read().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        entry = json.loads(line)
        if entry["headers"].get("X-CloudTasks-TaskName") != task_id or entry["status"] != int(status):
            continue
        oidc = entry.get("oidc")
        if want_oidc and not (oidc or {}).get("verified"):
            continue
        attempt = entry["headers"].get("X-CloudTasks-TaskRetryCount")
        print(f"    worker got {task_id} (retry count {attempt}): {entry['method']} {entry['path']} -> {entry['status']}"
              + (f", OIDC token verified (email={oidc['email']}, aud={oidc['aud']})" if oidc else ""))
        sys.exit(0)
    time.sleep(0.2)
sys.exit(f"task {task_id} got no {status} answer from the worker within {limit} s (record: {record})")
EOF
}

# show_tasks: status and counters of every Task as the stack's state has them (after a refresh).
show_tasks() {
  pulumi stack export --stack "$STACK" >"$RUN/state.json"
  python - "$RUN/state.json" <<'EOF'
import json, sys
resources = json.load(open(sys.argv[1]))["deployment"].get("resources", [])
print(f"    {'task':<9} {'status':<11} {'dispatch_count':>14} {'response_count':>14} {'last rpc code':>13}  task name")
for r in resources:
    if r["type"].endswith("cloudtasks:Task"):
        o = r.get("outputs", {})
        last = ((o.get("last_attempt") or {}).get("response_status") or {}).get("code", "-")
        print(f"    {r['urn'].rsplit('::', 1)[1]:<9} {o.get('status'):<11} {o.get('dispatch_count'):>14} "
              f"{o.get('response_count'):>14} {last!s:>13}  {o.get('name', '').rsplit('/', 1)[-1]}")
EOF
}

output() { pulumi stack output --stack "$STACK" "$1"; }

step "1/7 starting the Cloud Tasks emulator and the sample workers (logs in $RUN)"
# The queue retries a failed attempt after 6 s, so a refresh can catch a task between two attempts.
cat >"$RUN/queues.yaml" <<EOF
queues:
  - name: $QUEUE
    retry_config: {max_attempts: 5, min_backoff: 6s, max_backoff: 6s}
EOF
cloudtasks-emulator start --port 0 --http-port 0 --config "$RUN/queues.yaml" \
  --log-level INFO >"$RUN/emulator.out" 2>"$RUN/emulator.log" &
PIDS+=($!)
EMULATOR_HOST=$(wait_for_line "$RUN/emulator.out" '^export CLOUD_TASKS_EMULATOR_HOST=' emulator | cut -d= -f2)
EMULATOR_HTTP=$(wait_for_line "$RUN/emulator.log" 'REST and OIDC discovery on ' emulator | sed 's/.*discovery on //')
info "emulator: gRPC $EMULATOR_HOST, REST/OIDC $EMULATOR_HTTP"

python examples/worker.py --port 0 --fail-first 1 --record "$RUN/worker-http.jsonl" >"$RUN/worker-http.log" 2>&1 &
PIDS+=($!)
WORKER_URL=$(wait_for_line "$RUN/worker-http.log" 'listening on' worker | sed 's/.*listening on //')
python examples/worker.py --port 0 --tls --issuer "$EMULATOR_HTTP" --record "$RUN/worker-https.jsonl" \
  >"$RUN/worker-https.log" 2>&1 &
PIDS+=($!)
SECURE_URL=$(wait_for_line "$RUN/worker-https.log" 'listening on' worker | sed 's/.*listening on //')
info "workers:  $WORKER_URL (plain; answers 503 to its first request), $SECURE_URL (TLS, verifies OIDC tokens against the emulator's JWKS)"

step "2/7 stack '$STACK' (local file backend $PULUMI_BACKEND_URL)"
if pulumi stack ls --json | grep -q "\"name\": \"$STACK\""; then  # left over from an interrupted run
  pulumi stack rm --yes --force "$STACK" >/dev/null
fi
pulumi stack init "$STACK" --non-interactive >/dev/null
SCHEDULE_AT=$(python -c 'import datetime as d; print((d.datetime.now(d.timezone.utc) + d.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))')
pulumi config set --stack "$STACK" cloudtasks:emulatorHost "$EMULATOR_HOST"
pulumi config set --stack "$STACK" queue "$QUEUE"
pulumi config set --stack "$STACK" workerUrl "$WORKER_URL"
pulumi config set --stack "$STACK" secureWorkerUrl "$SECURE_URL"
pulumi config set --stack "$STACK" scheduleAt "$SCHEDULE_AT"
pulumi config set --stack "$STACK" version 1
info "config: cloudtasks:emulatorHost=$EMULATOR_HOST version=1 scheduleAt=$SCHEDULE_AT"

step "3/7 pulumi up: enqueue hello (now), later (at $SCHEDULE_AT) and verified (OIDC)"
pulumi up --stack "$STACK" --yes --non-interactive
HELLO_ID=$(output hello_name | sed 's|.*/tasks/||')
VERIFIED_ID=$(output verified_name | sed 's|.*/tasks/||')

step "4/7 waiting for the first attempt of hello (the worker answers 503) and for verified"
wait_for_request "$RUN/worker-http.jsonl" "$HELLO_ID" 503
wait_for_request "$RUN/worker-https.jsonl" "$VERIFIED_ID" 200 oidc
pulumi refresh --stack "$STACK" --yes --non-interactive --skip-preview --suppress-outputs
show_tasks
info "dispatched = attempted and waiting for a retry (hello got a 503); gone = ran; scheduled = not yet run."

step "5/7 waiting for hello's retry to succeed, then pulumi refresh"
wait_for_request "$RUN/worker-http.jsonl" "$HELLO_ID" 200
pulumi refresh --stack "$STACK" --yes --non-interactive --skip-preview --suppress-outputs
show_tasks
info "tasks that ran are gone from the queue but stay in the stack with their last counters:"
info "a later 'pulumi up' does not re-run them. (Stack outputs are recomputed by the next 'up'.)"

step "6/7 trigger change: version 1 -> 2, so 'pulumi up' replaces hello (and only hello)"
pulumi config set --stack "$STACK" version 2
pulumi up --stack "$STACK" --yes --non-interactive
NEW_HELLO_ID=$(output hello_name | sed 's|.*/tasks/||')
[ "$NEW_HELLO_ID" != "$HELLO_ID" ] || die "the trigger change did not replace hello"
info "hello: $HELLO_ID -> $NEW_HELLO_ID"
wait_for_request "$RUN/worker-http.jsonl" "$NEW_HELLO_ID" 200

step "7/7 pulumi destroy: deletes the task that has not run yet (later), forgets the others"
pulumi destroy --stack "$STACK" --yes --non-interactive --skip-preview
LEFT=$(cloudtasks tasks list "$QUEUE" --emulator-host "$EMULATOR_HOST" --format json \
  | python -c 'import json, sys; print(len(json.load(sys.stdin)))')
[ "$LEFT" = 0 ] || die "$LEFT task(s) left in $QUEUE after destroy"
info "queue $QUEUE is empty"
pulumi stack rm --yes "$STACK" >/dev/null

printf '\n\033[1;32mquickstart OK in %ss\033[0m: up, the worker got the tasks (OIDC verified), refresh, trigger replace, destroy.\n' \
  "$((SECONDS - START))"
