"""Fixtures of the harness's tests."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess

import pytest

from tests.support.db import ROOT


@pytest.fixture(autouse=True)
def harness_installable() -> None:
    """The harness installs and runs with make (``make bench``, ``make bench-install``), as on
    a development or CI machine.  The compose test image has no make, no wrk and no bench
    extra, and its user cannot install them: there these tests are skipped, and say why."""
    if shutil.which("make") is None:
        pytest.skip("the benchmark harness needs make (it is not in the compose test image)")


@pytest.fixture(scope="session")
def bench_extra() -> None:
    """The bench extra (psutil, matplotlib, py-spy) installed in this virtualenv.

    It is not in the test install; ``make bench-install`` adds it, as ``make bench`` does for
    the smoke test. Only when missing: in a git worktree that shares another checkout's venv,
    make would also re-point that venv's editable install at the worktree.
    """
    if importlib.util.find_spec("psutil") is not None:
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSYS_")}
    done = subprocess.run(
        ["make", "--no-print-directory", "bench-install"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    importlib.invalidate_caches()  # this process imports what was just installed
