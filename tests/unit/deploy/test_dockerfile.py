"""The Dockerfile, read as data: a pinned slim base, the lock before the code, no compiler, no root.

hadolint (in CI) reviews the Dockerfile's general hygiene; these tests hold it to this project's
own rules, which no generic linter knows.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text: str) -> dict[str, Stage]:
    """Stages by name, in order, each with its (KEYWORD, arguments) instructions."""
    stages: dict[str, Stage] = {}
    logical = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    for line in logical.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            base, _, name = args.partition(" AS ")
            stages[name.strip()] = Stage(name.strip(), base.strip())
        else:
            list(stages.values())[-1].instructions.append((keyword, args))
    return stages


def lineage(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, oldest first."""
    chain = [stages[name]]
    while chain[0].base in stages:
        chain.insert(0, stages[chain[0].base])
    return chain


def flattened(stages: dict[str, Stage], name: str) -> list[tuple[str, str]]:
    return [i for stage in lineage(stages, name) for i in stage.instructions]


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return parse((ROOT / "Dockerfile").read_text())


def test_base_is_the_official_python_311_slim_image_pinned_to_a_release(stages):
    external = {s.base for s in stages.values() if s.base not in stages}
    assert len(external) == 1
    (base,) = external
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base), base
    assert 'python_requires=">=3.11"' in (ROOT / "setup.py").read_text()


def test_runtime_is_the_default_target_and_runs_the_web(stages):
    assert list(stages)[-1] == "runtime"  # `docker build .` builds what compose's services run
    runtime = stages["runtime"]
    assert runtime.all("CMD")[-1] == '["chatsys-web", "production.ini"]'
    assert "6543" in runtime.all("EXPOSE")


@pytest.mark.parametrize("target", ["runtime", "test"])
def test_processes_run_as_an_unprivileged_user(stages, target):
    users = [args for kw, args in flattened(stages, target) if kw == "USER"]
    assert users, f"{target} runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, users[-1]
    created = " ".join(args for kw, args in flattened(stages, target) if kw == "RUN")
    assert f"useradd --system --uid {uid} " in created
    # USER comes last but for the command: nothing after it needs root.
    keywords = [kw for kw, _ in stages[target].instructions]
    assert set(keywords[keywords.index("USER") + 1 :]) <= {"EXPOSE", "CMD"}


@pytest.mark.parametrize("target", ["runtime", "test"])
def test_the_lock_is_installed_before_any_source_is_copied(stages, target):
    steps = flattened(stages, target)
    lock_install = next(i for i, (kw, args) in enumerate(steps) if kw == "RUN" and "-r requirements.txt" in args)
    copies = [(i, args) for i, (kw, args) in enumerate(steps) if kw == "COPY"]
    assert copies[0] == (lock_install - 1, "requirements.txt ./")  # its own layer, just before
    for i, args in copies[1:]:
        assert i > lock_install, args


def test_every_python_package_comes_as_a_wheel_and_nothing_is_compiled(stages):
    runs = [args for stage in stages.values() for args in stage.all("RUN")]
    for args in runs:
        if "pip install" in args and " -r " in args:
            assert "--only-binary=:all:" in args, args
        assert not re.search(r"\b(apt-get|apt|apk|yum|dnf)\b", args), f"system packages: {args}"


def test_the_runtime_gets_the_code_as_a_wheel_with_its_ini_and_migrations(stages):
    runtime = stages["runtime"]
    assert "--from=wheel /wheels /wheels" in runtime.all("COPY")
    assert "production.ini ./" in runtime.all("COPY")
    assert "alembic ./alembic" in runtime.all("COPY")
    assert not any(args.startswith(". ") for args in runtime.all("COPY"))  # no tests, no dev ini


def test_python_runs_unbuffered_and_writes_no_bytecode(stages):
    env = " ".join(stages["base"].all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env


def test_classic_builder_can_build_it(stages):
    """docker-compose 1.29 builds without BuildKit: no RUN --mount, no heredocs, no syntax line."""
    for stage in stages.values():
        for keyword, args in stage.instructions:
            assert not args.startswith("--mount") and "<<" not in args, f"{keyword} {args}"
    assert not (ROOT / "Dockerfile").read_text().startswith("# syntax")


def test_the_build_context_leaves_out_local_state_and_secrets():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".env"} <= ignored
    # The test image runs the whole suite, including the tests that read these files.
    for needed in ("tests", "docker", "docker-compose.yml", "Procfile", "Dockerfile"):
        assert needed not in ignored


def test_build_steps_use_no_cache_for_pip(stages):
    for stage in stages.values():
        for args in stage.all("RUN"):
            for command in args.split("&&"):
                words = shlex.split(command)
                if words[:2] == ["pip", "install"] or words[:2] == ["pip", "wheel"]:
                    assert "--no-cache-dir" in words, command
