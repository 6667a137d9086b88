"""Rows read as one JSON column that MySQL builds, for the hottest read: a /v1 page of messages.

A page of 50 messages read as plain columns spent most of its CPU in PyMySQL's pure-Python
decoding (five columns a row, two of them datetimes) and in turning each row into its
representation.  Read as one ``JSON_OBJECT`` per row and parsed by orjson, the same page cost
about a quarter less web CPU on the benchmark's read workload, past the 10 % that a departure
from plain columns must gain (docs/decisions.md, "Message pages are read as JSON that MySQL
builds").

The object is built from the aggregate's own list of shown columns and the keys clients see, so
a field is still defined once; timestamps are formatted by MySQL exactly as
:func:`chatsys.domain.fields.isoformat` writes them.  MariaDB keeps the keys in the order given;
MySQL 8 sorts them, which JSON does not mind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Boolean, DateTime, Table, func, literal_column
from sqlalchemy.sql.elements import Label

LABEL = "shown"
# fields.isoformat in MySQL's DATE_FORMAT: microseconds and a Z.
ISO_FORMAT = literal_column("'%Y-%m-%dT%H:%i:%s.%fZ'")


def json_object(table: Table, columns: Sequence[str], keys: Sequence[str]) -> Label:
    """``JSON_OBJECT(key, column, …)`` of ``columns`` shown as ``keys``, labelled ``shown``."""
    parts: list[Any] = []
    for key, name in zip(keys, columns, strict=True):
        column = table.c[name]
        if isinstance(column.type, DateTime):
            value = func.date_format(column, ISO_FORMAT)
        elif isinstance(column.type, Boolean):  # a TINYINT to MySQL: true or false, not 1 or 0
            value = func.json_extract(func.if_(column, "true", "false"), "$")
        else:
            value = column
        parts += [literal_column(f"'{key}'"), value]  # keys are this module's constants, not input
    return func.json_object(*parts).label(LABEL)


def unpack(row: Any) -> dict[str, Any]:
    return orjson.loads(getattr(row, LABEL))
