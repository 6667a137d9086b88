"""chatsys-web's default worker count: the cores a container may use, not the host's."""

import pytest

from chatsys.scripts import web


@pytest.fixture
def host_of_64_cores(monkeypatch):
    monkeypatch.setattr(web.os, "sched_getaffinity", lambda pid: set(range(64)))


@pytest.mark.parametrize(
    "cpu_max,expected",
    [
        ("max 100000\n", 64),  # no quota
        ("200000 100000\n", 2),  # --cpus 2
        ("150000 100000\n", 2),  # --cpus 1.5: rounded up
        ("50000 100000\n", 1),  # --cpus 0.5: at least one
        ("10000000 100000\n", 64),  # a quota above the cpuset
        ("garbage\n", 64),
    ],
)
def test_the_cgroup_quota_caps_the_workers(tmp_path, host_of_64_cores, cpu_max, expected):
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert web.available_cpus(str(path)) == expected


def test_without_a_cgroup_file_the_cpuset_counts(tmp_path, host_of_64_cores):
    assert web.available_cpus(str(tmp_path / "missing")) == 64


def test_the_cpuset_counts_not_the_host(monkeypatch, tmp_path):
    monkeypatch.setattr(web.os, "sched_getaffinity", lambda pid: {0, 5})
    monkeypatch.setattr(web.os, "cpu_count", lambda: 64)
    assert web.available_cpus(str(tmp_path / "missing")) == 2
