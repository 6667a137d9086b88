"""The fast validator (fastjsonschema) and the explaining one (jsonschema) agree on every case:
a request the fast one accepts is one the OpenAPI schema accepts."""

import pytest

from chatsys.web.errors import ValidationFailed
from chatsys.web.validation import _fast_validator, _validator, validate

CASES = [
    ("MessageCreate", {"body": "hi"}),
    ("MessageCreate", {"body": ""}),
    ("MessageCreate", {"body": "   "}),
    ("MessageCreate", {"body": "a\x00b"}),
    ("MessageCreate", {"body": "x" * 10_000}),
    ("MessageCreate", {"body": "x" * 10_001}),
    ("MessageCreate", {"body": 1}),
    ("MessageCreate", {"body": None}),
    ("MessageCreate", {}),
    ("MessageCreate", {"body": "x", "extra": 1}),
    ("MessageCreate", ["x"]),
    ("ChatCreate", {}),
    ("ChatCreate", {"name": "n"}),
    ("ChatCreate", {"name": ""}),
    ("ApplicationCreate", {"name": "x" * 256}),
]


@pytest.mark.parametrize("schema,instance", CASES)
def test_fast_and_explaining_validators_agree(schema, instance):
    import fastjsonschema

    try:
        _fast_validator(schema)(instance)
        fast_ok = True
    except fastjsonschema.JsonSchemaException:
        fast_ok = False
    assert fast_ok == _validator(schema).is_valid(instance)
    if not fast_ok:
        with pytest.raises(ValidationFailed):
            validate(schema, instance)


def _patterns(node) -> set[str]:
    """Every ``pattern`` of the OpenAPI document, wherever it sits."""
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            found.add(node["pattern"])
        for value in node.values():
            found |= _patterns(value)
    elif isinstance(node, list):
        for value in node:
            found |= _patterns(value)
    return found


HOSTILE = ["a" * 65000 + "\x00", " " * 65000 + "\x00", " a" * 32500 + "\x00", "\x00" * 65000, "a\x00" * 32500]


@pytest.mark.parametrize("text", HOSTILE, ids=["letters+nul", "spaces+nul", "alternating+nul", "nuls", "a-nul"])
def test_every_pattern_of_the_document_runs_in_linear_time(text):
    """A backtracking pattern takes seconds on 64 KiB of these (quadratic); a linear one, about a
    millisecond.  The bound is far from both, so the machine's speed does not decide the test."""
    import re
    import time

    from chatsys.web.openapi import load_spec

    patterns = _patterns(load_spec())
    assert patterns
    for pattern in patterns:
        compiled = re.compile(pattern)
        started = time.perf_counter()
        compiled.search(text)
        assert time.perf_counter() - started < 0.25, pattern


def test_white_space_is_the_same_for_the_document_and_python():
    """The pattern says which characters are white space explicitly, as Python's ``str.isspace``
    does: ECMA's ``\\s`` (what clients read the document with) differs on \\x1c-\\x1f and U+FEFF."""
    import sys

    accepted = _fast_validator("ChatUpdate")
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        if char == "\x00" or 0xD800 <= code <= 0xDFFF:
            continue
        try:
            accepted({"name": char})
            ok = True
        except Exception:
            ok = False
        assert ok == (not char.isspace()), hex(code)
