"""How a create tells a duplicate from another integrity error: by MySQL's error code, whatever
the key is called (it changed with migration 0003) and whatever language the server speaks."""

import pymysql
import pytest
from sqlalchemy.exc import IntegrityError

from chatsys.creation import is_duplicate


def integrity_error(code: int, message: str) -> IntegrityError:
    return IntegrityError("INSERT …", {}, pymysql.err.IntegrityError(code, message))


@pytest.mark.parametrize(
    "message",
    [
        "Duplicate entry '201-5' for key 'PRIMARY'",  # MariaDB, messages since 0003
        "Duplicate entry '201-5' for key 'messages.PRIMARY'",  # MySQL 8
        "Duplicate entry '201-5' for key 'uq_messages_chat_id_number'",  # messages before 0003
        "Duplicata du champ '7-3' pour la clef 'PRIMARY'",  # lc_messages = fr_FR
    ],
)
def test_a_duplicate_entry_is_a_duplicate(message):
    assert is_duplicate(integrity_error(1062, message))


def test_other_integrity_errors_are_not():
    fk = "Cannot add or update a child row: a foreign key constraint fails (… Duplicate entry …)"
    assert not is_duplicate(integrity_error(1452, fk))
    assert not is_duplicate(IntegrityError("INSERT …", {}, Exception()))
