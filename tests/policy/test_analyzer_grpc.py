"""The pack as the CLI runs it: `python -u -m pulumi.policy <engine> <pack dir>` in the pack directory
(what the Python language host's RunPlugin and the `pulumi-analyzer-policy-python` fallback both
exec), driven over the Analyzer gRPC protocol the engine speaks."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2 as pb
from pulumi.runtime.proto import analyzer_pb2_grpc

from pulumi_cloudtasks.policy import POLICY_NAMES, TASK_TYPE_TOKEN
from policy_helpers import QUEUE, good_props, secret, urn

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "policy"
U = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


@pytest.fixture(scope="module")
def analyzer():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],  # engine unused unless it logs
        cwd=PACK, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stderr: list[bytes] = []
    threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True).start()
    try:
        line = proc.stdout.readline()  # the analyzer's handshake: its port on the first stdout line
        assert line.strip().isdigit(), f"no port on stdout: {line!r}; stderr: {b''.join(stderr)!r}"
        channel = grpc.insecure_channel(f"127.0.0.1:{int(line)}")
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = analyzer_pb2_grpc.AnalyzerStub(channel)
        yield stub
        channel.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not any(b"Traceback" in chunk for chunk in stderr), b"".join(stderr)


def struct(props: dict) -> struct_pb2.Struct:
    return json_format.ParseDict(props, struct_pb2.Struct())


def analyze(stub, props: dict, name: str = "nightly", type_: str = TASK_TYPE_TOKEN):
    request = pb.AnalyzeRequest(type=type_, properties=struct(props), urn=urn(name), name=name,
                                options=pb.AnalyzerResourceOptions())
    return stub.Analyze(request, timeout=30).diagnostics


def configure(stub, **policies):
    """Configure like the engine: every policy with its level; properties where given."""
    levels = {"cloudtasks-explicit-task-id": pb.ADVISORY, "cloudtasks-stack-task-count": pb.ADVISORY}
    config = {}
    for name in POLICY_NAMES:
        level, props = policies.get(name.replace("cloudtasks-", "").replace("-", "_"), (None, None))
        config[name] = pb.PolicyConfig(enforcementLevel=level if level is not None else levels.get(name, pb.MANDATORY),
                                       properties=struct(props) if props else None)
    stub.Configure(pb.ConfigureAnalyzerRequest(policyConfig=config), timeout=30)


def test_analyzer_info_lists_policies_levels_and_schemas(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "pulumi-cloudtasks" and info.supportsConfig
    policies = {p.name: p for p in info.policies}
    assert list(policies) == POLICY_NAMES
    assert policies["cloudtasks-https-only"].enforcementLevel == pb.MANDATORY
    assert policies["cloudtasks-explicit-task-id"].enforcementLevel == pb.ADVISORY
    assert policies["cloudtasks-stack-task-count"].policy_type == pb.POLICY_TYPE_STACK
    schema = json_format.MessageToDict(policies["cloudtasks-https-only"].configSchema)
    assert schema["properties"]["allowHttpHosts"]["default"] == ["localhost", "127.0.0.1"]
    assert analyzer.GetPluginInfo(empty_pb2.Empty(), timeout=30).version


def test_bad_task_gets_diagnostics_with_policy_names_and_levels(analyzer):
    configure(analyzer)
    bad = {"queue": QUEUE, "task_id": "nightly-fixed",
           "http_request": {"url": "http://worker.example.com/run", "http_method": "POST",
                            "headers": {"X-Api-Key": secret("k-TOPSECRET-1")}, "body": "{}"},
           "dispatch_deadline": "5s"}
    diagnostics = analyze(analyzer, bad)
    by_policy = {}
    for d in diagnostics:
        by_policy.setdefault(d.policyName, []).append(d)
    assert set(by_policy) == {"cloudtasks-https-only", "cloudtasks-authenticated-targets",
                              "cloudtasks-no-static-credentials", "cloudtasks-service-limits",
                              "cloudtasks-explicit-task-id"}
    for name, found in by_policy.items():
        for d in found:
            assert d.policyPackName == "pulumi-cloudtasks"
            assert d.enforcementLevel == (pb.ADVISORY if name == "cloudtasks-explicit-task-id" else pb.MANDATORY)
            assert "Task 'nightly'" in d.message and "Fix:" in d.message
            assert "TOPSECRET" not in d.message
    assert "dispatch_deadline = '5s'" in by_policy["cloudtasks-service-limits"][0].message
    assert analyze(analyzer, good_props()) == []
    assert analyze(analyzer, bad, type_="aws:s3/bucket:Bucket") == []


def test_unknowns_at_preview_are_not_violations_nor_cant_run(analyzer):
    configure(analyzer, allowed_queues=(None, {"allowedQueues": ["demo/*/*"]}))
    props = {"queue": U, "task_id": U, "schedule_time": U,
             "http_request": {"url": U, "headers": {"X-Trace": U}, "body": U, "oidc_token": U}}
    assert list(analyze(analyzer, props)) == []  # no "can't run policy ... during preview" either


def test_configure_overrides_levels_and_properties(analyzer):
    local = good_props(http_request={"url": "http://localhost:8123/run", "body": "{}"})
    configure(analyzer)
    assert {d.policyName for d in analyze(analyzer, local)} == {"cloudtasks-authenticated-targets"}
    configure(analyzer,
              https_only=(pb.ADVISORY, {"allowHttpHosts": ["*.internal"]}),
              authenticated_targets=(pb.DISABLED, None),
              allowed_queues=(None, {"allowedQueues": ["projects/other/locations/*/queues/*"]}))
    diagnostics = {d.policyName: d for d in analyze(analyzer, local)}
    assert set(diagnostics) == {"cloudtasks-https-only", "cloudtasks-allowed-queues"}
    assert diagnostics["cloudtasks-https-only"].enforcementLevel == pb.ADVISORY
    assert diagnostics["cloudtasks-allowed-queues"].enforcementLevel == pb.MANDATORY
    configure(analyzer, https_only=(None, {"allowHttpHost": ["x"]}))
    [d] = analyze(analyzer, good_props())
    assert d.policyName == "cloudtasks-https-only" and "unknown key 'allowHttpHost'" in d.message


def test_analyze_stack_counts_tasks(analyzer):
    def resources(n):
        return [pb.AnalyzerResource(type=TASK_TYPE_TOKEN, properties=struct(good_props()), urn=urn(f"t{i}"),
                                    name=f"t{i}") for i in range(n)]

    configure(analyzer, stack_task_count=(None, {"maxTasksPerStack": 3}))
    assert list(analyzer.AnalyzeStack(pb.AnalyzeStackRequest(resources=resources(3)), timeout=30).diagnostics) == []
    [d] = analyzer.AnalyzeStack(pb.AnalyzeStackRequest(resources=resources(4)), timeout=30).diagnostics
    assert d.policyName == "cloudtasks-stack-task-count" and d.enforcementLevel == pb.ADVISORY
    assert "4 Task resources" in d.message and "maxTasksPerStack (3)" in d.message
