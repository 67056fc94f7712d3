"""A server's recognition vocabulary: the names and words members put in place of what speech recognition
misheard, kept with how often and how lately they were used, and handed to faster-whisper as ``hotwords`` and
an ``initial_prompt`` so the next transcription spells them right.

Pure logic: the terms are stored by :mod:`hypotez.storage`, and the transcriber takes the strings built here.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hypotez.errors import InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

__all__ = [
    "MAX_TERM_CHARS",
    "MAX_TERM_WORDS",
    "Term",
    "clean_term",
    "corrected_terms",
    "hotwords",
    "initial_prompt",
    "merge",
]

#: The longest term, in characters (a name, not a sentence).
MAX_TERM_CHARS = 40
#: The most words a term found in a correction keeps together ("Zyphrawn Kell", "Jean Luc Picard").
MAX_TERM_WORDS = 3

_GLOSSARY = "Glossary: "

#: Words a correction may change that are never worth teaching: common function words of English, Russian,
#: Ukrainian, German, French and Spanish.
_STOP_WORD_TEXT = """
    a an the and or but nor so yet if then than that this these those there here of in on at to for from by
    with without into onto off out over under up down about as is am are was were be been being do does did
    done have has had having will would shall should can could may might must not no yes it its it's i me my
    mine we us our you your he him his she her they them their what which who whom whose when where why how
    all any some each every both either neither just also very too only oh ok okay um uh hmm yeah well
    и в во не на я что он она оно они мы вы ты с со как а но да нет то это к ко у же ли бы по за из от до о об
    для так все его её ее их мне меня тебя там тут вот ну і й та що це як але ні так
    der die das und oder ein eine ist nicht zu mit den dem des ich du er sie es wir ihr
    le la les et ou un une est pas de du des je tu il elle nous vous ils
    el los las y o uno una es no que en por con para yo
"""

_NUMBER = re.compile(r"\d+(?:st|nd|rd|th|s)?")
_MENTION = re.compile(r"<[@#][!&]?\d*>?|@(?:everyone|here)\b", re.IGNORECASE)
#: Format characters that belong in words (zero-width non-joiner and joiner: Persian, Indic scripts, emoji).
_JOINERS = frozenset("\u200c\u200d")


@dataclass(frozen=True, slots=True)
class Term:
    """A word or name of a server's vocabulary: how many corrections used it, and when the last did."""

    text: str
    uses: int
    last_used: dt.datetime


@dataclass(frozen=True, slots=True)
class _Word:
    text: str  # as the member wrote it, surrounding punctuation removed
    key: str  # what it is compared by: case and punctuation folded


def _fold(text: str) -> str:
    """``text`` for comparison: NFKC, case folded, punctuation removed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in text if not unicodedata.category(c).startswith("P"))


_STOP_WORDS = frozenset(_fold(word) for word in _STOP_WORD_TEXT.split())


def _strip_punctuation(token: str) -> str:
    start, end = 0, len(token)
    while start < end and unicodedata.category(token[start]).startswith("P"):
        start += 1
    while end > start and unicodedata.category(token[end - 1]).startswith("P"):
        end -= 1
    return token[start:end]


def _words(text: str) -> list[_Word]:
    """The words of ``text``; tokens that are only punctuation, and mentions, are dropped."""
    words: list[_Word] = []
    for token in unicodedata.normalize("NFC", text).split():
        if _MENTION.search(token):
            continue
        key = _fold(token)
        if key:
            words.append(_Word(_strip_punctuation(token), key))
    return words


def _is_name_like(word: _Word) -> bool:
    """Capitalised, as names are; a word of a script without case counts as neither."""
    first = next((c for c in word.text if c.isalpha()), "")
    return first.isupper()


def _ignored(word: _Word) -> bool:
    return word.key in _STOP_WORDS or _NUMBER.fullmatch(word.key) is not None or len(word.key) < 2


def _terms_of_span(span: Sequence[_Word], heard: Collection[str]) -> list[list[_Word]]:
    """A replaced or inserted span's terms: consecutive capitalised words stay together (a name of up to
    :data:`MAX_TERM_WORDS` words), other words stand alone; stop-words and numbers separate and are dropped, and
    so is a term whose every word is in ``heard`` (the recogniser already knows it).  When the span holds a name,
    only its names are terms: the plain words around it were changed along with it."""
    names: list[list[_Word]] = []
    words: list[list[_Word]] = []
    run: list[_Word] = []
    for word in span:
        if _ignored(word):
            names += _split_run(run)
            run = []
        elif _is_name_like(word):
            run.append(word)
        else:
            names += _split_run(run)
            run = []
            words.append([word])
    names += _split_run(run)
    names = [term for term in names if not all(w.key in heard for w in term)]
    return names or [term for term in words if term[0].key not in heard]


def _split_run(run: list[_Word]) -> list[list[_Word]]:
    if len(run) <= MAX_TERM_WORDS and len(" ".join(w.text for w in run)) <= MAX_TERM_CHARS:
        return [run] if run else []
    return [[w] for w in run]  # too long for a name: more likely a capitalised phrase; its words stand alone


def corrected_terms(heard: str, corrected: str, *, max_terms: int = 10) -> list[str]:
    """The words and names a member put in place of what was misheard, spelled as in ``corrected``.

    The two texts are compared word by word, case and punctuation folded, so a change of case or punctuation
    only is no term.  From each replaced or inserted span of ``corrected``, stop-words, numbers and words the
    recogniser already produced (present in ``heard``) are left out; consecutive capitalised words stay together
    as one multi-word name, and a span that holds a name gives only its names.  A capitalised word that starts a
    sentence looks like a name too ("Tell Drossmund"), a known limit of a rule without a dictionary.

    At most ``max_terms`` terms, each at most :data:`MAX_TERM_CHARS` characters, first found first, without
    duplicates.
    """
    if max_terms <= 0:
        return []
    before, after = _words(heard), _words(corrected)
    already_heard = {w.key for w in before}
    matcher = difflib.SequenceMatcher(None, [w.key for w in before], [w.key for w in after], autojunk=False)
    terms: list[str] = []
    seen: set[str] = set()
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if tag not in {"replace", "insert"}:
            continue
        for words in _terms_of_span(after[j1:j2], already_heard):
            try:
                term = clean_term(" ".join(w.text for w in words))
            except InvalidInputError:
                continue  # a mention, a control character or too long: never a vocabulary term
            key = _fold(term)
            if key in seen:
                continue
            seen.add(key)
            terms.append(term)
            if len(terms) >= max_terms:
                return terms
    return terms


def merge(existing: Sequence[Term], new_terms: Sequence[str], *, now: dt.datetime, limit: int) -> list[Term]:
    """``existing`` with ``new_terms`` counted in: a term already there (compared case-insensitively) gains a use,
    takes the new spelling and ``now`` as its last use; a new one starts at one use.  The ``limit`` best are kept,
    most used first, then most recently used."""
    merged: dict[str, Term] = {}
    for term in existing:
        key = term.text.casefold()
        known = merged.get(key)
        if known is None:
            merged[key] = term
        else:  # stored twice: one term
            latest = term if _instant(term.last_used) > _instant(known.last_used) else known
            merged[key] = Term(latest.text, known.uses + term.uses, latest.last_used)
    for raw in new_terms:
        text = " ".join(raw.split())
        if not text:
            continue
        key = text.casefold()
        known = merged.get(key)
        merged[key] = (
            Term(text, 1, now) if known is None else replace(known, text=text, uses=known.uses + 1, last_used=now)
        )
    ranked = sorted(merged.values(), key=lambda t: (-t.uses, -_instant(t.last_used), t.text.casefold()))
    return ranked[: max(0, limit)]


def _instant(when: dt.datetime) -> float:
    """Seconds since the epoch; a naive time (as SQLite gives them back) is taken as UTC."""
    return when.replace(tzinfo=dt.UTC).timestamp() if when.tzinfo is None else when.timestamp()


def _fitting(terms: Sequence[Term], budget: int) -> list[str]:
    """The terms, in order, that fit in ``budget`` characters joined by ``", "``; a term too long is passed
    over, never cut."""
    chosen: list[str] = []
    used = 0
    seen: set[str] = set()
    for term in terms:
        text = " ".join(term.text.split())
        key = text.casefold()
        if not text or key in seen:
            continue
        cost = len(text) + (2 if chosen else 0)
        if used + cost > budget:
            continue
        chosen.append(text)
        seen.add(key)
        used += cost
    return chosen


def hotwords(terms: Sequence[Term], *, max_chars: int = 200) -> str | None:
    """faster-whisper's ``hotwords``: the terms, in the order given (best first, as :func:`merge` returns them),
    comma-separated, at most ``max_chars`` characters; ``None`` when there are none."""
    chosen = _fitting(terms, max_chars)
    return ", ".join(chosen) if chosen else None


def initial_prompt(terms: Sequence[Term], *, max_chars: int = 200) -> str | None:
    """faster-whisper's ``initial_prompt``: ``"Glossary: Zyphrawn, Kellbridge."``, at most ``max_chars``
    characters; ``None`` when no term fits."""
    chosen = _fitting(terms, max_chars - len(_GLOSSARY) - 1)
    return f"{_GLOSSARY}{', '.join(chosen)}." if chosen else None


def clean_term(text: str) -> str:
    """A term a curator typed, checked and tidied: surrounding space stripped, inner runs of space made one.

    Raises :class:`~hypotez.errors.InvalidInputError` for an empty term, one over :data:`MAX_TERM_CHARS`
    characters, control or invisible characters, and mentions (``<@…>``, ``<#…>``, ``@everyone``, ``@here``).
    """
    if any(unicodedata.category(c)[0] == "C" and c not in _JOINERS for c in text):
        raise InvalidInputError(
            "A vocabulary term is one line of visible text: no line breaks, tabs or control characters."
        )
    cleaned = " ".join(unicodedata.normalize("NFC", text).split())
    if not cleaned:
        raise InvalidInputError("A vocabulary term cannot be empty: give the word or name as it should be spelled.")
    if _MENTION.search(cleaned):
        raise InvalidInputError("A vocabulary term cannot be a mention (of a member, a role, a channel or everyone).")
    if len(cleaned) > MAX_TERM_CHARS:
        raise InvalidInputError(
            f"A vocabulary term is a word or a name of at most {MAX_TERM_CHARS} characters; "
            f"this one has {len(cleaned)}."
        )
    return cleaned
