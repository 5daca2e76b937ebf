"""Firmware tests on two interpreters.

A test module here that carries the line ``# firmware-test: micropython`` is
plain Python with ``assert`` (see ``fwtest.py``). pytest imports and runs it
under CPython as usual, and this conftest adds one more item per ``test_*``
function, ``…[micropython]``, whose result comes from running the same module
on the real MicroPython interpreter (WebAssembly port under Node, see
``run_mpy.mjs``). All marked modules run in one Node process, once per pytest
session, on first use.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIRMWARE = ROOT / "firmware"
MARKER = "# firmware-test: micropython"
RUNNER = HERE / "run_mpy.mjs"
MPY_PACKAGE = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"

for p in (str(FIRMWARE), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)


def _marked_modules() -> list[Path]:
    return sorted(p for p in HERE.glob("test_*.py") if MARKER in p.read_text(encoding="utf-8"))


def _test_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return sorted(
        n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    )


class _MpyResults:
    """Runs every marked module on MicroPython once, on first request."""

    def __init__(self) -> None:
        self._report: dict[str, Any] | None = None

    def get(self, module: str) -> dict[str, Any]:
        if self._report is None:
            self._report = run_micropython(_marked_modules())
        entry: dict[str, Any] = self._report.get(module, {"tests": [], "error": "not run"})
        return entry


def run_micropython(modules: list[Path], timeout_s: float = 300) -> dict[str, Any]:
    """Run ``modules`` through ``run_mpy.mjs``; the parsed JSON report."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed (scripts/bootstrap.sh installs it)")
    if not MPY_PACKAGE.is_dir():
        raise RuntimeError(f"{MPY_PACKAGE} missing: run `npm ci` (make bootstrap)")
    proc = subprocess.run(
        [node, str(RUNNER), str(FIRMWARE), str(HERE), *map(str, modules)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"run_mpy.mjs failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


_RESULTS = _MpyResults()


class MicroPythonFailure(Exception):
    pass


class MpyItem(pytest.Item):
    def __init__(self, *, module: str, func: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.module = module
        self.func = func

    def runtest(self) -> None:
        entry = _RESULTS.get(self.module)
        if entry.get("error"):
            raise MicroPythonFailure(
                f"module {self.module} did not run on MicroPython: {entry['error']}\n"
                f"{entry.get('output', '')}"
            )
        if entry.get("impl") != "micropython":
            raise MicroPythonFailure(f"ran on {entry.get('impl')!r}, not MicroPython")
        for test in entry["tests"]:
            if test["name"] == self.func:
                if not test["ok"]:
                    raise MicroPythonFailure(test["error"])
                return
        raise MicroPythonFailure(f"{self.func} was not run on MicroPython")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, MicroPythonFailure):
            return f"on MicroPython:\n{excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"{self.module}::{self.func}[micropython]"


class MpyFile(pytest.File):
    def collect(self) -> Any:
        for name in _test_names(self.path):
            yield MpyItem.from_parent(
                self, name=f"{name}[micropython]", module=self.path.stem, func=name
            )


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> MpyFile | None:
    if (
        file_path.parent == HERE
        and file_path.name.startswith("test_")
        and file_path.suffix == ".py"
        and MARKER in file_path.read_text(encoding="utf-8")
    ):
        return MpyFile.from_parent(parent, path=file_path)
    return None
