"""Physical index names and the index definition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from chatsys.search.mapping import index_body, index_mappings, index_settings, physical_index_name


def test_physical_index_names_sort_by_utc_creation_time() -> None:
    plus_two = timezone(timedelta(hours=2))

    assert physical_index_name("msgs", datetime(2026, 1, 2, 3, 4, 5, 6)) == "msgs-v20260102030405000006"
    assert (
        physical_index_name("msgs", datetime(2026, 1, 2, 5, 4, 5, 6, tzinfo=plus_two)) == "msgs-v20260102030405000006"
    )
    earlier, later = datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 10, tzinfo=UTC)
    assert physical_index_name("msgs", earlier) < physical_index_name("msgs", later)


def test_the_definition_is_a_fresh_copy_each_time() -> None:
    body = index_body("msgs")
    body["mappings"]["properties"]["body"]["fields"].clear()
    body["settings"]["analysis"].clear()

    assert index_mappings()["properties"]["body"]["fields"]
    assert index_settings()["analysis"]
    assert body["aliases"] == {"msgs": {"is_write_index": True}}


def test_the_mapping_has_a_property_for_every_field_of_a_search_document() -> None:
    """The mapping is strict (an unknown field is refused): a field added to messages needs its
    property here, and this test names the one that is missing."""
    from chatsys.domain import messages

    document = messages.search_document(
        {"app_token": "t", **{key: None for key in messages.KEYS}, "body": "x"}, deleted=False
    )
    properties = index_mappings()["properties"]
    assert sorted((set(document) | {"chat_key"}) - set(properties)) == []
