"""The architecture as code: who may import what, and the CLI built from RunConfig."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from conftest import ROOT

from training.cli import build_parser
from training.config import RunConfig

FRAMEWORKS = {"tensorflow", "keras", "jax", "jaxlib", "torch", "tf_keras"}
WORKER = ROOT / "training" / "worker"


ENTRY = ("app.py", "navigation.py")  # `streamlit run app.py` serves navigation.py, which declares pages/


def python_files() -> list[Path]:
    files = [*(ROOT / name for name in ENTRY), *(ROOT / "pages").glob("*.py"),
             *(ROOT / "dashboard").rglob("*.py"), *(ROOT / "training").rglob("*.py")]
    return sorted(files)


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """(module, imported at module level?) for every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, id(node) in top_level))
            found += [(f"{node.module}.{alias.name}", id(node) in top_level) for alias in node.names]
    return found


def test_the_scan_sees_the_frameworks_the_worker_imports():
    # Guards the test below against a scan that finds nothing.
    worker_imports = {name.split(".")[0] for path in WORKER.rglob("*.py") for name, _ in imports_of(path)}
    assert {"tensorflow", "keras", "jax", "torch"} <= worker_imports


@pytest.mark.parametrize("path", [p for p in python_files() if WORKER not in p.parents],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_outside_the_worker_imports_a_framework(path):
    for name, _ in imports_of(path):
        assert name.split(".")[0] not in FRAMEWORKS, f"{path.relative_to(ROOT)} imports {name}"


# The commands that exist to run the worker in their own process, and nothing else.
WORKER_GATES = {ROOT / "training" / "cli" / "runs.py", ROOT / "training" / "cli" / "system.py"}


@pytest.mark.parametrize("path", [p for p in python_files() if WORKER not in p.parents],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_worker_commands_reach_the_worker_and_only_inside_them(path):
    for name, top_level in imports_of(path):
        if name.startswith("training.worker"):
            assert path in WORKER_GATES and not top_level, f"{path.relative_to(ROOT)} imports {name}"


# Each layer of training/ and what it may import from the project (docs/architecture.md).
# Dependencies point down: entry points, then launch and analysis, then system and store.
LAYERS = {
    "store": {"store"},
    "system": {"system"},
    "imports": {"imports", "store"},
    "analysis": {"analysis", "store"},
    "launch": {"launch", "store", "system", "analysis"},
    "exports": {"exports", "store", "analysis"},
    "worker": {"worker", "store", "system"},
    "cli": {"cli", "launch", "analysis", "imports", "exports", "store", "system", "worker"},
}
SHARED = {"training", "training.config"}  # PROJECT_ROOT and RunConfig: every layer may use them


def layer_of(path: Path) -> str | None:
    parts = path.relative_to(ROOT).parts
    return parts[1] if parts[0] == "training" and len(parts) > 2 else None


@pytest.mark.parametrize("path", [p for p in python_files() if layer_of(p)],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_dependencies_point_down(path):
    allowed = LAYERS[layer_of(path)]
    for name, _ in imports_of(path):  # lazy imports too: a hidden arrow is still an arrow
        if name.startswith("dashboard"):
            raise AssertionError(f"{path.relative_to(ROOT)} imports the UI: {name}")
        if not name.startswith("training.") or name in SHARED or name.startswith("training.config."):
            continue
        target = name.split(".")[1]
        if target in LAYERS:
            assert target in allowed, f"{path.relative_to(ROOT)} ({layer_of(path)}) imports {name}"


def ui_files() -> list[Path]:
    return [p for p in python_files() if p.parts[len(ROOT.parts)] in ("pages", "dashboard", *ENTRY)]


@pytest.mark.parametrize("path", ui_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_ui_reaches_launchers_and_the_store_only_through_their_interfaces(path):
    for name, _ in imports_of(path):
        if name.startswith("training.launch."):
            assert name.split(".")[2] in ("sweeps", "Launcher", "launcher_for", "request_stop",
                                          "launch_pair", "STOP_GRACE_S", "workload"), \
                f"{path.relative_to(ROOT)} imports {name}: use training.launch"
        if name.startswith("training.store."):
            assert name.split(".")[2][0].isupper() or name.split(".")[2] in ("default_runs_dir",), \
                f"{path.relative_to(ROOT)} imports {name}: use Run and RunStore from training.store"


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_another_modules_private_names(path):
    tree = ast.parse(path.read_text())
    modules = set()
    for node in ast.walk(tree):
        ours = isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("training", "dashboard"))
        for alias in node.names if ours else []:
            private = alias.name.startswith("_") and not alias.name.startswith("__")
            assert not private, f"{path.relative_to(ROOT)} imports {alias.name}"
            modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            assert not (node.attr.startswith("_") and not node.attr.startswith("__")), \
                f"{path.relative_to(ROOT)} uses {node.value.id}.{node.attr}"


@pytest.mark.parametrize("path", [p for p in python_files() if p.parent.name != "pages"
                                  and p.name not in ENTRY], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_says_what_it_owns(path):
    assert ast.get_docstring(ast.parse(path.read_text())), f"{path.relative_to(ROOT)} has no docstring"


def test_nothing_under_training_imports_streamlit():
    for path in [*(ROOT / "training").rglob("*.py")]:
        assert not any(name.split(".")[0] == "streamlit" for name, _ in imports_of(path)), path


def test_run_folder_file_names_have_one_owner():
    names = ["metrics.jsonl", "system.jsonl", "stderr.log", "stdout.log", "status.json", "pid.json",
             "config.json"]
    owners = {path for path in python_files() for name in names if f'"{name}"' in path.read_text()}
    assert owners == {ROOT / "training" / "store" / "layout.py"}


def test_every_run_setting_is_a_cli_option_with_its_default_and_choices():
    run = subcommand("run")
    options = {action.dest: action for action in run._actions}
    for spec in dataclasses.fields(RunConfig):
        action = options[spec.name]
        assert action.default == spec.default, spec.name
        assert action.help and spec.metadata["help"] in action.help
        if spec.metadata["choices"]:
            assert tuple(action.choices) == spec.metadata["choices"]


def subcommand(name: str):
    return build_parser()._subparsers._group_actions[0].choices[name]


def test_a_sweep_takes_comma_lists_of_the_swept_settings_and_single_values_of_the_rest():
    args = subcommand("sweep").parse_args(["--batch-size", "32,128", "--threads", "1,all", "--device", "cpu",
                                           "--epochs", "2"])
    assert args.batch_size == [32, 128] and args.threads == [1, None] and args.device == ["cpu"]
    assert args.epochs == 2 and args.backend is None  # unswept settings keep one value; unset lists are None
