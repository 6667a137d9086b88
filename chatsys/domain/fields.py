"""How a column's value is written in JSON: the one rule every representation, event payload
and search document of the aggregates uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def isoformat(moment: datetime) -> str:
    """A UTC timestamp (naive, as MySQL stores it) in the API's format: ISO 8601, microseconds, Z."""
    return moment.isoformat(timespec="microseconds") + "Z"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.removesuffix("Z"))


def json_value(value: Any) -> Any:
    return isoformat(value) if isinstance(value, datetime) else value
