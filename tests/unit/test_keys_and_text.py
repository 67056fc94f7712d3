from __future__ import annotations

import random

import pytest

from hypotez.keys import Key, build_key, parse_key
from hypotez.ml.tokens import estimate_tokens
from hypotez.text import split_text


def _join(text: str, spans: list[tuple[int, int]]) -> str:
    return "".join(text[a:b] for a, b in spans)


@pytest.mark.parametrize("length", [0, 1, 1999, 2000, 2001, 3500, 10_000])
def test_split_covers_the_text_exactly(length: int) -> None:
    rng = random.Random(length)
    words = ["да", "🙂", "שלום", "word", "\n", "\n\n", "longerword.", "x" * 30]
    text = ""
    while len(text) < length:
        text += rng.choice(words) + " "
    text = text[:length]
    spans = split_text(text)
    assert _join(text, spans) == text
    assert all(0 < b - a <= 2000 for a, b in spans) or text == ""
    assert [a for a, _ in spans[1:]] == [b for _, b in spans[:-1]]


def test_split_prefers_paragraphs_then_lines_then_words() -> None:
    text = "a" * 1500 + "\n\n" + "b" * 1000
    assert split_text(text) == [(0, 1502), (1502, 2502)]
    text = "a" * 1500 + "\n" + "b" * 1000
    assert split_text(text) == [(0, 1501), (1501, 2501)]
    text = "a" * 1500 + " " + "b" * 1000
    assert split_text(text) == [(0, 1501), (1501, 2501)]
    unbroken = "z" * 4500
    assert split_text(unbroken) == [(0, 2000), (2000, 4000), (4000, 4500)]


def test_split_rejects_a_bad_limit() -> None:
    with pytest.raises(ValueError, match="positive"):
        split_text("abc", 0)


def test_keys_round_trip_and_reject_foreign_ids() -> None:
    custom_id = build_key(Key.CORRECTION_MODAL, 42, 0, 1500)
    assert custom_id == "hz.cm:42:0:1500"
    parsed = parse_key(custom_id)
    assert parsed is not None
    assert parsed.key is Key.CORRECTION_MODAL
    assert parsed.int_arg(2) == 1500
    assert parse_key("someone-else:1") is None
    with pytest.raises(ValueError, match="cannot contain"):
        build_key(Key.RATE_UP, "a:b")
    with pytest.raises(ValueError, match="too long"):
        build_key(Key.RATE_UP, "x" * 100)


def test_token_estimate_grows_with_text_and_counts_scripts() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("hello") == 2
    assert estimate_tokens("hello, world!") == 6
    assert estimate_tokens("Привет") > 1
    assert estimate_tokens("word " * 100) == 100
    assert estimate_tokens("a" * 400) == 100
