"""The files chatsys reads from its own package at run time are package data: they are in the
wheel, and so in the Docker image (whose runtime stage installs the wheel and nothing else)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

DATA = ("web/openapi.yaml", "web/demo/index.html", "web/demo/demo.css", "web/demo/demo.js")


def test_the_files_read_at_run_time_are_built_into_the_package(tmp_path):
    pytest.importorskip("setuptools", reason="building the package needs setuptools")
    # What the wheel stage of the Dockerfile copies: setup.py and the package.
    shutil.copy(ROOT / "setup.py", tmp_path)
    shutil.copytree(ROOT / "chatsys", tmp_path / "chatsys", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path / "build")],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    built = tmp_path / "build" / "chatsys"
    assert [name for name in DATA if not (built / name).is_file()] == []
    demo = {p.name for p in (ROOT / "chatsys" / "web" / "demo").iterdir()}
    assert demo == {p.name for p in (built / "web" / "demo").iterdir()}, "every file of the page ships"
