"""JSON snapshot assertions: a test fails when the value drifts from its file.

Regenerate on purpose with ``CHATSYS_UPDATE_SNAPSHOTS=1 pytest …`` and review the diff in git.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import pytest

UPDATE_ENV = "CHATSYS_UPDATE_SNAPSHOTS"


def assert_snapshot(path: Path, actual: Any) -> None:
    """Compare ``actual`` (as indented JSON, keys in their order) with the file at ``path``."""
    text = json.dumps(actual, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get(UPDATE_ENV) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"snapshot {path} does not exist; create it with {UPDATE_ENV}=1")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(path), "actual"))
        pytest.fail(f"{path.name} drifted; if intended, rerun with {UPDATE_ENV}=1 and review:\n{diff}")
