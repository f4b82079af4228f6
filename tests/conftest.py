"""Suite-wide rules: a test that needs the real Pulumi CLI fails loudly without it, never skips."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TOOLS_BIN = Path(__file__).resolve().parents[1] / ".tools" / "bin"


@pytest.fixture(autouse=True)
def _pulumi_cli_for_stack_tests(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("stack") is None:
        return
    if shutil.which("pulumi") is None and not (TOOLS_BIN / "pulumi").exists():
        pytest.fail("this test runs the real Pulumi CLI, which is not on PATH: run it through "
                    "scripts/test.sh (it builds one into .tools/bin when missing)")
