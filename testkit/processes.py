"""The real chatsys processes (relay, workers, web) as children of the test run.

They read a generated ini: testing.ini with this run's database, Redis prefix and RabbitMQ
namespace.  Output goes to a log file per process, printed when a test fails.
"""

from __future__ import annotations

import configparser
import os
import signal
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
# The checkout these tests belong to: its code is what the children import, even where the venv
# belongs to another checkout (a git worktree sharing it), whose editable install points there.
ROOT = Path(__file__).resolve().parents[1]

# The settings a child process's ini must carry to use a run's own database, Redis key prefix,
# RabbitMQ names and search backend (the tests and the benchmark both generate such inis).
PROCESS_KEYS = (
    "sqlalchemy.url",
    "redis.url",
    "redis.key_prefix",
    "amqp.url",
    "amqp.namespace",
    "search.backend",
    "elasticsearch.url",
    "elasticsearch.index",
)


def write_ini(path: Path, base_ini: str, overrides: dict[str, str], listen: str | None = None) -> Path:
    config = configparser.RawConfigParser()
    config.optionxform = str  # keep key case
    config.read(base_ini)
    for key, value in overrides.items():
        config.set("app:main", key, str(value).replace("%", "%%"))
    if listen is not None:
        config.set("server:main", "listen", listen)
    config.set("logger_chatsys", "level", "INFO")
    with open(path, "w") as handle:
        config.write(handle)
    return path


class Proc:
    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str]):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.popen: subprocess.Popen | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.popen.wait(timeout)

    def kill(self) -> None:
        """kill -9."""
        if self.alive:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not finish in time."""
        if not self.alive:
            return self.popen.returncode if self.popen else None
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Processes:
    """Starts and tracks child processes for one test; stops them all at the end."""

    def __init__(self, ini: Path, log_dir: Path):
        self.ini = ini
        self.log_dir = log_dir
        self.procs: list[Proc] = []
        self.counter = 0

    def spawn(
        self, name: str, script: str, *args: str, env: dict[str, str] | None = None, ini: Path | None = None
    ) -> Proc:
        self.counter += 1
        proc = Proc(
            name,
            [str(BIN / script), str(ini or self.ini), *args],
            self.log_dir / f"{self.counter:02d}-{name}.log",
            # The generated ini says everything; CHATSYS_* in the test's environment must not
            # point the children elsewhere.
            {
                **{k: v for k, v in os.environ.items() if not k.startswith("CHATSYS_")},
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
                **(env or {}),
            },
        )
        self.procs.append(proc)
        return proc.start()

    def relay(self, env: dict[str, str] | None = None, ini: Path | None = None) -> Proc:
        return self.spawn("relay", "chatsys-relay", env=env, ini=ini)

    def worker(
        self, consumer: str = "all", *args: str, env: dict[str, str] | None = None, ini: Path | None = None
    ) -> Proc:
        return self.spawn(f"worker-{consumer}", "chatsys-worker", "--consumer", consumer, *args, env=env, ini=ini)

    def stop_all(self) -> None:
        for proc in self.procs:
            proc.stop()

    def dump(self) -> str:
        return "\n".join(f"----- {p.name} ({p.log_path.name}) -----\n{p.output()[-6000:]}" for p in self.procs)
