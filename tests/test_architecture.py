"""The structure the code promises (docs/architecture.md): layers checked by import-linter, short functions,
thin scripts with console entry points, and no reference to files outside the repository."""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "magicanimate").rglob("*.py")) + sorted((REPO / "scripts").glob("*.py"))


def test_import_contracts_hold():
    """Layers (cli > app > demo > benchmarks > testing > evaluation|training > pipelines|extraction >
    models|data > media > config > utils > errors), models never importing the checkpoint package, and
    torch-free media; the contracts live in pyproject.toml."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter not installed (the dev extra installs it)")
    proc = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_no_function_over_80_lines():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_scripts_are_thin_shims_with_entry_points():
    import tomllib

    entry_points = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    targets = set(entry_points.values())
    for script in sorted((REPO / "scripts").glob("*.py")):
        text = script.read_text()
        assert len(text.splitlines()) <= 60, script.name
        imported = re.search(r"^from (magicanimate\.[\w.]+) import main", text, re.M)
        assert imported, f"{script.name} does not hand over to a package main"
        assert f"{imported[1]}:main" in targets, f"{script.name}: no console entry point for {imported[1]}"
    for name, target in entry_points.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_console_entry_point_runs():
    exe = shutil.which("magicanimate-animate", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the package is not installed with its entry points in this environment")
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--reference" in proc.stdout and "--steps" in proc.stdout


def test_no_reference_to_files_outside_the_repository():
    outside = re.compile(r"DESIGN\\.md|DESIGN §|\\.\\./shared")
    hits = [f"{p.relative_to(REPO)}:{i + 1}" for p in SOURCES + sorted((REPO / "configs").rglob("*.yaml"))
            for i, line in enumerate(p.read_text().splitlines()) if outside.search(line)]
    assert not hits, hits
