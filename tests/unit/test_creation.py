"""Which unique key a duplicate-entry error names: how a create tells a taken number from a
concurrent Idempotency-Key, on MariaDB and MySQL 8 alike."""

import pymysql
import pytest
from sqlalchemy.exc import IntegrityError

from chatsys.creation import duplicate_key


def integrity_error(code: int, message: str) -> IntegrityError:
    return IntegrityError("INSERT …", {}, pymysql.err.IntegrityError(code, message))


@pytest.mark.parametrize(
    ("message", "key"),
    [
        ("Duplicate entry '201-5' for key 'PRIMARY'", "PRIMARY"),  # MariaDB
        ("Duplicate entry '201-5' for key 'messages.PRIMARY'", "PRIMARY"),  # MySQL 8
        ("Duplicate entry '7-12' for key 'uq_chats_application_id_number'", "uq_chats_application_id_number"),
        ("Duplicate entry '7-12' for key 'chats.uq_chats_application_id_number'", "uq_chats_application_id_number"),
    ],
)
def test_the_violated_key_is_named(message, key):
    assert duplicate_key(integrity_error(1062, message)) == key


def test_other_integrity_errors_name_no_key():
    fk = "Cannot add or update a child row: a foreign key constraint fails (... FOREIGN KEY (`chat_id`) ... PRIMARY"
    assert duplicate_key(integrity_error(1452, fk)) is None
    assert duplicate_key(IntegrityError("INSERT …", {}, Exception("no args"))) is None
