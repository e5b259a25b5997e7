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


def python_files() -> list[Path]:
    files = [ROOT / "app.py", *(ROOT / "pages").glob("*.py"), *(ROOT / "dashboard").rglob("*.py"),
             *(ROOT / "training").rglob("*.py")]
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


@pytest.mark.parametrize("path", [p for p in python_files() if WORKER not in p.parents],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_cli_reaches_the_worker_and_only_when_it_trains(path):
    for name, top_level in imports_of(path):
        if name.startswith("training.worker"):
            assert path == ROOT / "training" / "cli.py" and not top_level, \
                f"{path.relative_to(ROOT)} imports {name}"


@pytest.mark.parametrize("path", [p for p in python_files() if p.parent.name != "pages"
                                  and p.name != "app.py"], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_says_what_it_owns(path):
    assert ast.get_docstring(ast.parse(path.read_text())), f"{path.relative_to(ROOT)} has no docstring"


def test_store_and_launcher_never_import_streamlit():
    for path in [*(ROOT / "training").rglob("*.py")]:
        assert not any(name.split(".")[0] == "streamlit" for name, _ in imports_of(path)), path


def test_run_folder_file_names_have_one_owner():
    names = ["metrics.jsonl", "system.jsonl", "stderr.log", "stdout.log", "status.json", "pid.json",
             "config.json"]
    owners = {path for path in python_files() for name in names if f'"{name}"' in path.read_text()}
    assert owners == {ROOT / "training" / "store" / "layout.py"}


def test_every_run_setting_is_a_cli_option_with_its_default_and_choices():
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    options = {action.dest: action for action in run._actions}
    for spec in dataclasses.fields(RunConfig):
        action = options[spec.name]
        assert action.default == spec.default, spec.name
        assert action.help and spec.metadata["help"] in action.help
        if spec.metadata["choices"]:
            assert tuple(action.choices) == spec.metadata["choices"]
