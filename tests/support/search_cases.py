"""The search semantics of chatsys as a table, to run against every search backend.

Each case stores some messages, searches the *asked chat* (application ``ASKED_APP_TOKEN``, chat
``ASKED_CHAT_NUMBER``) with ``sort=newest``, and lists the message numbers expected, newest
first.  Messages of other chats may share numbers and text with the asked chat: a leak shows up
as an extra number.  The rules come from :mod:`chatsys.search.query`: words are ``\\w+`` runs,
lower-cased; every word must occur in the body, case- and accent-insensitively, at the start of
a word, or for words of 3 or more characters anywhere inside a word.

This module depends on nothing of a backend, so that the database backend's tests and the
Elasticsearch backend's tests read the very same cases.
"""

from __future__ import annotations

from dataclasses import dataclass

ASKED_APP_TOKEN = "case-app-asked"
OTHER_APP_TOKEN = "case-app-other"
ASKED_CHAT_NUMBER = 1


@dataclass(frozen=True)
class CaseMessage:
    number: int
    body: str
    app_token: str = ASKED_APP_TOKEN
    chat_number: int = ASKED_CHAT_NUMBER


@dataclass(frozen=True)
class SearchCase:
    name: str
    messages: tuple[CaseMessage, ...]
    query: str
    expected: tuple[int, ...]  # message numbers of the asked chat, newest first


def _chat(*bodies: str) -> tuple[CaseMessage, ...]:
    """Messages 1, 2, 3… of the asked chat."""
    return tuple(CaseMessage(number, body) for number, body in enumerate(bodies, start=1))


SEARCH_CASES: tuple[SearchCase, ...] = (
    SearchCase("prefix_of_a_word", _chat("hello world", "goodbye"), "hel", (1,)),
    SearchCase("inside_a_word", _chat("hello", "help me"), "ell", (1,)),
    SearchCase("end_of_a_word", _chat("hello", "yellow", "low"), "llo", (2, 1)),
    SearchCase("whole_word", _chat("hello", "hell"), "hello", (1,)),
    SearchCase(
        "word_longer_than_any_prefix",
        _chat("supercalifragilisticexpialidocious", "super"),
        "califragilisticexpialidocious",
        (1,),
    ),
    SearchCase("short_word_matches_word_starts_only", _chat("the cat", "he said", "ahead"), "he", (2,)),
    SearchCase("single_character", _chat("hello world", "how"), "w", (1,)),
    SearchCase("short_digits_match_word_starts_only", _chat("order 12345 shipped", "order 45"), "45", (2,)),
    SearchCase("digits_inside_a_number", _chat("order 12345 shipped", "order 45"), "234", (1,)),
    SearchCase("query_in_upper_case", _chat("hello there"), "HELLO", (1,)),
    SearchCase("body_in_mixed_case", _chat("HeLLo There", "bye"), "hello", (1,)),
    SearchCase("every_word_must_match", _chat("hello world", "hello there", "world peace"), "hello world", (1,)),
    SearchCase("word_order_does_not_matter", _chat("hello world", "hello there", "world peace"), "world hello", (1,)),
    SearchCase("words_may_match_one_body_word", _chat("hello", "help"), "hel llo", (1,)),
    SearchCase("repeated_query_word", _chat("hello", "bye"), "hello HELLO", (1,)),
    SearchCase("accents_in_body_are_folded", _chat("café au lait", "tea"), "cafe", (1,)),
    SearchCase("accents_in_query_are_folded", _chat("cafe au lait", "tea"), "CAFÉ", (1,)),
    SearchCase("accented_short_word", _chat("ça va", "cava"), "ça", (2, 1)),
    SearchCase("punctuation_in_body", _chat("hello, world!", "word"), "world", (1,)),
    SearchCase("punctuation_in_query", _chat("hello world", "hello"), "hello, world!", (1,)),
    SearchCase("apostrophe_separates_words", _chat("don't stop", "tea", "art"), "t", (2, 1)),
    SearchCase("underscore_is_part_of_a_word", _chat("snake_case name", "snake case"), "e_c", (1,)),
    SearchCase("like_wildcards_are_literal", _chat("a_b", "axb", "100% sure", "1000 sure"), "a_b", (1,)),
    SearchCase("percent_sign_is_not_a_word", _chat("100% sure", "1000 sure", "100 sure"), "100%", (3, 2, 1)),
    SearchCase("non_latin_script", _chat("Привет мир", "hello"), "прив", (1,)),
    SearchCase("html_is_plain_text", _chat("<b>bold</b> move", "b"), "bold", (1,)),
    SearchCase("substring_does_not_span_words", _chat("foo bar", "xabc bcdy", "abcd"), "abcd", (3,)),
    SearchCase("substring_does_not_span_a_space", _chat("foo bar", "foobar"), "oba", (2,)),
    SearchCase("query_without_words", _chat("hello world", "?!"), "?! ...", ()),
    SearchCase("no_match", _chat("hello world", "goodbye"), "xyz", ()),
    SearchCase("newest_first", _chat("hello one", "nothing", "hello three", "hello four"), "hello", (4, 3, 1)),
    SearchCase(
        "only_the_asked_chat",
        (
            CaseMessage(1, "hello there"),
            CaseMessage(1, "hello there", app_token=OTHER_APP_TOKEN),
            CaseMessage(1, "hello there", chat_number=2),
            CaseMessage(2, "hello again", app_token=OTHER_APP_TOKEN),
            CaseMessage(3, "hello again", chat_number=2),
        ),
        "hello",
        (1,),
    ),
)
