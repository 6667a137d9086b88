"""The search semantics of chatsys as a table, to run against every search backend.

Each case stores some messages, searches the *asked chat* (application ``ASKED_APP_TOKEN``, chat
``ASKED_CHAT_NUMBER``) with ``sort=newest``, and lists the message numbers expected, newest
first.  Messages of other chats may share numbers and text with the asked chat: a leak shows up
as an extra number.  The rules come from :mod:`chatsys.search.query`, which follows what the
Elasticsearch index does: words are runs of letters, decimal digits and ``_``; text folds one
character at a time (lower case, ASCII folding); a word of 1 or 2 characters matches the start
of a body word, a longer one its 3-character windows anywhere in the body.

This module depends on nothing of a backend, so that the database backend's tests and the
Elasticsearch backend's tests (on the double, noida-db and Elasticsearch) read the very same
cases.  A case that meets a known noida gap names it: it is a strict xfail there.
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
    noida_gap: str | None = None  # the name of a gap of tests/support/noida_gaps.py it meets


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
    # Word characters are letters, decimal digits and "_": other numbers separate words.
    SearchCase(
        "fraction_separates_words",
        _chat("a½b", "ab"),
        "b",
        (1,),
        noida_gap="numbers_that_are_not_digits_separate_words",
    ),
    SearchCase(
        "roman_numeral_separates_words",
        _chat("Ⅻb", "b"),
        "b",
        (2, 1),
        noida_gap="numbers_that_are_not_digits_separate_words",
    ),
    SearchCase("superscript_in_a_query_separates_words", _chat("x 2", "x2", "y"), "x²", (2, 1)),
    SearchCase("query_of_non_digit_numbers_has_no_words", _chat("½ Ⅻ ²", "1/2"), "½ Ⅻ", ()),
    # Folding is one character at a time, as lowercase + asciifolding; a long word is compared
    # by 3-character windows, so a letter folding to two letters stays one character there.
    SearchCase("superscript_folds_to_a_digit", _chat("x²y", "x2y", "xy"), "x2y", (2, 1)),
    SearchCase("stroke_letters_fold", _chat("smørrebrød", "smor", "Łódź", "lodz"), "smor", (2, 1)),
    SearchCase("stroke_letters_fold_in_word_starts", _chat("Łódź", "lodz", "ołów"), "lo", (2, 1)),
    SearchCase("ligature_letter_folds_to_two_at_a_word_start", _chat("œuvre", "oeuvre", "ouvre"), "oe", (2, 1)),
    SearchCase("two_letter_start_matches_a_ligature_letter", _chat("Æble", "aeble", "able"), "æb", (2, 1)),
    SearchCase("ligature_letter_is_one_character_of_a_window", _chat("œuvre", "oeuvre"), "œuvre", (1,)),
    SearchCase("folded_letters_do_not_split_a_window", _chat("œuvre", "oeuvre"), "oeuvre", (2,)),
    SearchCase("sharp_s_is_one_character_of_a_window", _chat("Straße", "strasse"), "straße", (1,)),
    SearchCase("full_width_letters_fold", _chat("ＡＢＣ", "abc", "xyz"), "abc", (2, 1)),
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


@dataclass(frozen=True)
class HighlightCase:
    """The highlight the API shows for one message and query, on every backend.

    Elasticsearch's unified highlighter with ``fragment_size: 150`` and one fragment: the passage
    starts at the sentence holding the match and takes the following sentences while they fit;
    run-on text is cut at words to about 150 characters (UTF-16 units) ending at the match.
    """

    name: str
    body: str
    query: str
    expected: str
    noida_gap: str | None = None


_RUN_ON = " ".join(f"word{i}" for i in range(60))
_FIFTH = "Fifth goes on and on for a while longer than needed. "

HIGHLIGHT_CASES: tuple[HighlightCase, ...] = (
    HighlightCase(
        "sentence_holding_the_match", "Hi there. The needle is here.", "needle", "The <em>needle</em> is here."
    ),
    # body.prefix shows "<em>He</em> left. Then the world ended.", body.trigram "Then the
    # <em>wor</em>ld ended.": the API carries the second's mark into the first, which holds it.
    HighlightCase(
        "mark_in_an_earlier_sentence",
        "He left. Then the world ended.",
        "he wor",
        "<em>He</em> left. Then the <em>wor</em>ld ended.",
    ),
    HighlightCase(
        "following_sentences_while_they_fit",
        "First one. Second sentence here. Third has the needle in it. Fourth is short. " + _FIFTH * 3,
        "needle",
        "Third has the <em>needle</em> in it. Fourth is short. Fifth goes on and on for a while longer than needed.",
    ),
    HighlightCase(
        "run_on_text_ends_at_the_match",
        _RUN_ON + " the needle",
        "needle",
        " ".join(f"word{i}" for i in range(39, 60)) + " the <em>needle</em>",
    ),
    HighlightCase(
        "run_on_text_starting_with_the_match",
        "The needle " + _RUN_ON,
        "needle",
        "The <em>needle</em> " + " ".join(f"word{i}" for i in range(22)),
    ),
    HighlightCase(
        "the_best_passage_wins",
        _RUN_ON + " needle end of it all and more words after the needle",
        "needle",
        "end of it all and more words after the <em>needle</em>",
    ),
    HighlightCase(
        "html_is_encoded",
        "a/b <c> \"d\" 'e' & needle",
        "needle",
        "a&#x2F;b &lt;c&gt; &quot;d&quot; &#x27;e&#x27; &amp; <em>needle</em>",
    ),
    HighlightCase(
        "abbreviations_and_numbers_do_not_end_sentences",
        "e.g. the needle. Mr. Smith has a needle too. 3.14 is pi.",
        "needle",
        "e.g. the <em>needle</em>. Mr. Smith has a <em>needle</em> too. 3.14 is pi.",
    ),
    HighlightCase(
        "an_emoji_counts_two",
        "😀 " * 50 + "the needle is here",
        "needle",
        "😀 " * 49 + "the <em>needle</em>",
        noida_gap="highlight_lengths_count_utf16_units",
    ),
    HighlightCase(
        "line_breaks_do_not_end_sentences",
        "line one\nline two has the needle\nline three",
        "needle",
        "line one\nline two has the <em>needle</em>\nline three",
        noida_gap="line_breaks_do_not_end_sentences",
    ),
)


def document(
    app_token: str,
    chat_number: int,
    number: int,
    body: str,
    version: int = 1,
    created_at=None,
    updated_at=None,
    deleted: bool = False,
):
    """A message's search document, as the indexer builds it (chatsys.domain.messages)."""
    from datetime import datetime
    from types import SimpleNamespace

    from chatsys.domain import messages
    from chatsys.search.interfaces import MessageDocument

    created_at = created_at or datetime(2026, 11, 27, 12, 0, 0)
    # Every shown column at its default (a field added later needs nothing here), then these.
    defaults = {name: messages.MESSAGES.c[name].default for name in messages.SHOWN}
    values = {name: default.arg if default is not None else None for name, default in defaults.items()}
    values.update(number=number, body=body, version=version, created_at=created_at)
    row = SimpleNamespace(**{**values, "updated_at": updated_at or created_at})
    data = {"app_token": app_token, **messages.representation(chat_number, row)}
    return MessageDocument(messages.search_document(data, deleted=deleted))
