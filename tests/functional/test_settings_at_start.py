"""Every process refuses a wrong setting at start, naming the key, whether the value came from
the ini or from the environment, and none builds the WSGI application to find out."""

from __future__ import annotations

import pytest

from testkit.processes import Processes, write_ini
from tests.conftest import process_overrides
from tests.support.db import TESTING_INI

SCRIPTS = [
    ("chatsys-web", "--workers", "1"),
    ("chatsys-relay",),
    ("chatsys-worker", "--consumer", "all"),
    ("chatsys-recount",),
    ("chatsys-reindex",),
    ("chatsys-deadletters", "list"),
]


@pytest.mark.parametrize("argv", SCRIPTS, ids=[argv[0] for argv in SCRIPTS])
def test_a_wrong_ini_value_stops_the_process_and_names_the_key(settings, tmp_path, argv):
    ini = write_ini(tmp_path / "bad.ini", TESTING_INI, process_overrides(settings, **{"relay.batch_size": "0"}))
    proc = Processes(ini, tmp_path).spawn("bad", *argv)
    assert proc.wait_exit(60) == 2
    assert "setting 'relay.batch_size' must be at least 1, got '0'" in proc.output()
    assert "Traceback" not in proc.output()


@pytest.mark.parametrize("argv", SCRIPTS[:3], ids=[argv[0] for argv in SCRIPTS[:3]])
def test_a_wrong_environment_value_names_the_key_and_the_variable(settings, tmp_path, argv):
    ini = write_ini(tmp_path / "good.ini", TESTING_INI, process_overrides(settings))
    proc = Processes(ini, tmp_path).spawn("bad", *argv, env={"CHATSYS_SEARCH_BACKEND": "solr"})
    assert proc.wait_exit(60) == 2
    assert "setting 'search.backend' (from CHATSYS_SEARCH_BACKEND) must be one of database, elasticsearch" in (
        proc.output()
    )


def test_a_misspelt_key_is_refused(settings, tmp_path):
    ini = write_ini(tmp_path / "typo.ini", TESTING_INI, process_overrides(settings, **{"worker.prefech": "10"}))
    proc = Processes(ini, tmp_path).spawn("typo", "chatsys-worker")
    assert proc.wait_exit(60) == 2
    assert "unknown setting 'worker.prefech'" in proc.output()
