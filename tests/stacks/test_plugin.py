"""The pytest plugin is registered through the package's ``pytest11`` entry point (the stack tests
use its fixtures: cloudtasks_emulator, cloudtasks_stack)."""
from importlib.metadata import entry_points


def test_plugin_registered_by_entry_point(request):
    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "cloudtasks"]
    assert entry.value == "pulumi_cloudtasks.testing.plugin"
    assert request.config.pluginmanager.has_plugin("cloudtasks")


def test_emulator_fixture_sets_the_environment(cloudtasks_emulator):
    import os
    assert os.environ["CLOUD_TASKS_EMULATOR_HOST"] == cloudtasks_emulator.host
    assert cloudtasks_emulator.list_tasks("projects/p/locations/l/queues/plugin-check") == []
