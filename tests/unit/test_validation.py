"""The fast validator (fastjsonschema) and the explaining one (jsonschema) agree on every case:
a request the fast one accepts is one the OpenAPI schema accepts."""

import pytest

from chatsys.errors import ValidationFailed
from chatsys.validation import _fast_validator, _validator, validate

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
    ("CompatMessageCreate", {"body": "x", "chat_number": 1, "app_token": "t"}),
    ("CompatMessageCreate", {"body": "x", "chat_number": 0, "app_token": "t"}),
    ("CompatMessageCreate", {"body": "x", "chat_number": 2**31, "app_token": "t"}),
    ("CompatMessageCreate", {"body": "x", "chat_number": True, "app_token": "t"}),
    ("CompatMessageCreate", {"body": "x", "chat_number": 1.5, "app_token": "t"}),
    ("CompatChatUpdate", {"name": "x"}),
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
