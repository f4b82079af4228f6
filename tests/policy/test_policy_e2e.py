"""End to end: the real Pulumi CLI (.tools/bin, built by tools/build-pulumi.sh) runs `policy/` on the
stacks under stacks/ through the Automation API, with a local file backend in a temp dir.

Preview needs no emulator (the provider's check does not call the API); `cloudtasks:emulatorHost`
points at a closed port so that anything trying to create a task would fail loudly."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from pulumi import automation as auto

ROOT = Path(__file__).resolve().parents[2]
PACK = str(ROOT / "policy")
BIN = ROOT / ".tools" / "bin"
VENV = ROOT / ".venv"
STACKS = Path(__file__).resolve().parent / "stacks"

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not (BIN / "pulumi").exists():
        pytest.fail("the Pulumi CLI is not built: run tools/build-pulumi.sh (or deselect with -m 'not stack')")
    state = tmp_path_factory.mktemp("state")
    return {
        "PATH": f"{BIN}:{VENV / 'bin'}:{os.environ.get('PATH', '')}",
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE": "policy-e2e",
        "PULUMI_HOME": str(tmp_path_factory.mktemp("home")),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PYTHONWARNINGS": "ignore::FutureWarning",
    }


def _stack(name: str, env: dict, tmp_path_factory) -> auto.Stack:
    """The stack program copied to a temp dir (the workspace writes Pulumi.<stack>.yaml next to it),
    with the project's one virtualenv."""
    work = tmp_path_factory.mktemp(name)
    shutil.copy(STACKS / name / "__main__.py", work / "__main__.py")
    text = (STACKS / name / "Pulumi.yaml").read_text().replace("../../../../.venv", str(VENV))
    (work / "Pulumi.yaml").write_text(text)
    stack = auto.create_or_select_stack("dev", work_dir=str(work),
                                        opts=auto.LocalWorkspaceOptions(
                                            env_vars=env, pulumi_command=auto.PulumiCommand(str(BIN.parent))))
    stack.set_config("cloudtasks:emulatorHost", auto.ConfigValue("127.0.0.1:9"))
    return stack


@pytest.fixture(scope="module")
def bad(env, tmp_path_factory):
    return _stack("bad", env, tmp_path_factory)


@pytest.fixture(scope="module")
def good(env, tmp_path_factory):
    return _stack("good", env, tmp_path_factory)


def _config_file(tmp_path, config: dict) -> str:
    path = tmp_path / "policy-config.json"
    path.write_text(json.dumps(config))
    return str(path)


def _failed(run) -> str:
    with pytest.raises(auto.CommandError) as info:
        run()
    return str(info.value)


def test_bad_stack_preview_fails_with_the_policy_messages_and_no_secret(bad):
    assert bad.preview().change_summary.get("create") == 2  # the stack and the task: without the pack, check accepts it
    out = _failed(lambda: bad.preview(policy_packs=[PACK]))
    assert "pulumi-cloudtasks@v0.1.0 (local: " in out and "[mandatory]  cloudtasks-https-only" in out
    for policy in ("cloudtasks-https-only", "cloudtasks-authenticated-targets",
                   "cloudtasks-no-static-credentials", "cloudtasks-explicit-task-id"):
        assert policy in out, policy
    assert "http_request.url = http://worker.example.com/..." in out
    assert "http_request.headers['X-Api-Key'] = <redacted>" in out
    assert "task_id = 'nightly-report'" in out and "Fix: remove task_id" in out
    assert "cloudtasks-allowed-queues" not in out and "cloudtasks-service-limits" not in out
    assert "TOPSECRET" not in out


def test_bad_stack_up_is_blocked_and_creates_nothing(bad):
    out = _failed(lambda: bad.up(policy_packs=[PACK]))
    assert "cloudtasks-https-only" in out
    resources = bad.export_stack().deployment.get("resources") or []
    assert not [r for r in resources if r.get("type", "").endswith("cloudtasks:Task")]


def test_good_stack_passes(good):
    result = good.preview(policy_packs=[PACK])
    assert result.change_summary.get("create") == 2
    assert "cloudtasks-" not in result.stdout  # not even an advisory: autonamed, so no explicit task_id


def test_policy_config_file_is_honoured(good, tmp_path):
    config = _config_file(tmp_path, {
        "cloudtasks-allowed-queues": {"allowedQueues": ["projects/prod/locations/*/queues/*"]},
        "cloudtasks-service-limits": {"maxDispatchDeadlineSeconds": 120},
    })
    out = _failed(lambda: good.preview(policy_packs=[PACK], policy_pack_configs=[config]))
    assert "cloudtasks-allowed-queues" in out and "queue = 'projects/demo/locations/us-central1/queues/jobs'" in out
    assert "cloudtasks-service-limits" in out and "dispatch_deadline = 300s" in out
    relaxed = _config_file(tmp_path, {"cloudtasks-allowed-queues": {"allowedQueues": ["demo/*/jobs"]}})
    assert good.preview(policy_packs=[PACK], policy_pack_configs=[relaxed]).change_summary.get("create") == 2


def test_policy_config_levels_can_be_lowered(bad, tmp_path):
    config = _config_file(tmp_path, {
        "cloudtasks-authenticated-targets": "disabled",
        "cloudtasks-no-static-credentials": {"enforcementLevel": "advisory"},
        "cloudtasks-https-only": {"enforcementLevel": "advisory", "allowHttpHosts": ["worker.example.com"]},
    })
    result = bad.preview(policy_packs=[PACK], policy_pack_configs=[config])
    assert "cloudtasks-no-static-credentials" in result.stdout and "advisory" in result.stdout
    assert "cloudtasks-authenticated-targets" not in result.stdout and "cloudtasks-https-only" not in result.stdout


def test_bad_config_value_is_rejected_naming_the_key(good, tmp_path):
    config = _config_file(tmp_path, {"cloudtasks-stack-task-count": {"maxTasksPerStack": "lots"}})
    out = _failed(lambda: good.preview(policy_packs=[PACK], policy_pack_configs=[config]))
    assert "maxTasksPerStack" in out and "cloudtasks-stack-task-count" in out


def test_unknown_config_key_is_rejected_naming_the_key(good, tmp_path):
    # The CLI's schema check ignores unknown keys; the rule itself reports them (mandatory here).
    config = _config_file(tmp_path, {"cloudtasks-https-only": {"allowHttpHost": ["localhost"]}})
    out = _failed(lambda: good.preview(policy_packs=[PACK], policy_pack_configs=[config]))
    assert "unknown key 'allowHttpHost'" in out and "allowHttpHosts" in out
