"""Which Redis error replies mean "unavailable for now" (503) rather than a bug (500)."""

import pytest
import redis.exceptions as rx

from chatsys.web.views.errors import redis_refused, url_is_utf8


@pytest.mark.parametrize(
    "exc",
    [
        rx.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        rx.ReadOnlyError("You can't write against a read only replica."),
        rx.TryAgainError("Multiple keys request during rehashing of slot"),
        rx.MasterDownError("Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
        rx.ResponseError("MISCONF Errors writing to the AOF file: No space left on device"),
        rx.ResponseError("BUSY Redis is busy running a script."),
        rx.ResponseError("NOREPLICAS Not enough good replicas to write."),
    ],
)
def test_refusals_are_unavailable(exc):
    assert redis_refused(exc)


@pytest.mark.parametrize(
    "exc",
    [
        rx.ResponseError("ERR wrong number of arguments for 'evalsha' command"),
        rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        rx.NoScriptError("No matching script."),
        rx.ResponseError("ERR Error running script: user_script:1: MISCONF in a message"),
    ],
)
def test_other_error_replies_are_bugs(exc):
    assert not redis_refused(exc)


@pytest.mark.parametrize(
    "environ,utf8",
    [
        ({"PATH_INFO": "/applications/abc", "QUERY_STRING": "q=caf%C3%A9"}, True),
        ({"PATH_INFO": "/caf\xc3\xa9", "QUERY_STRING": ""}, True),  # latin-1 text of UTF-8 bytes
        ({"PATH_INFO": "/\xff"}, False),
        ({"PATH_INFO": "/x", "QUERY_STRING": "q=%ff"}, False),
        ({"PATH_INFO": "/x", "QUERY_STRING": "q=\xff"}, False),  # a raw byte, not percent-encoded
        ({"PATH_INFO": "/x", "QUERY_STRING": "q=wor%C3"}, False),
    ],
)
def test_url_is_utf8_reads_path_and_query_as_wsgi_gives_them(environ, utf8):
    assert url_is_utf8(environ) is utf8
