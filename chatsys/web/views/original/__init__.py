"""The original Rails API, at the root: the paths, statuses, shapes and keys its controllers
answered with (KhaledMosaad/instabug_chat_system, app/controllers), over the same domain layer as
/v1.  Timestamps are written as Rails wrote them, with milliseconds."""

from __future__ import annotations

from datetime import datetime


def rails_time(moment: datetime) -> str:
    """A timestamp as Rails's JSON encoder writes it: ISO 8601, three decimals, Z."""
    return moment.isoformat(timespec="milliseconds") + "Z"
