"""The dataset parsers at their edges: ragged CSV rows, list-form ``content`` in JSONL, labels, escapes, line
numbers after blank lines and multi-line cells, the problem cap, chunking and repeated content.

Each test here was written against a weakened copy of the check it names (mutation testing, ``make mutate``)
and fails on it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from hypotez.errors import InvalidInputError
from hypotez.ml.datasets.parsing import KEPT_PROBLEMS, ParsedFile, Problem, iter_examples, parse_file

if TYPE_CHECKING:
    from pathlib import Path

    from hypotez.storage.models import DatasetExample


def _parse(
    tmp_path: Path, name: str, text: str | bytes, *, label: str = "positive", max_tokens: int = 1000
) -> ParsedFile:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return parse_file(path, label=label, origin="upload", source=name, max_tokens=max_tokens)


def _problems(parsed: ParsedFile) -> list[str]:
    return [str(p) for p in parsed.problems]


def _turns(example: DatasetExample) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in example.messages]


def _jsonl(*records: Any) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


# ------------------------------------------------------------------------------------------------ CSV


def test_ragged_csv_rows_are_problems_of_their_first_line(tmp_path: Path) -> None:
    parsed = _parse(
        tmp_path,
        "r.csv",
        "prompt,completion,label\n"
        "q1,a1,positive\n"
        "q2,a2\n"  # one column short
        "q3,a3,negative,extra\n"  # one too many
        '"multi\nline",a4,positive\n'  # lines 5-6
        "q5\n"  # line 7
        ",,\n"  # blank cells: skipped
        "   ,  , \n"
        "q6,a6,negative\n",
    )
    assert _problems(parsed) == [
        "r.csv line 3: 2 columns; the header has 3",
        "r.csv line 4: 4 columns; the header has 3",
        "r.csv line 7: 1 columns; the header has 3",
    ]
    assert [(_turns(e), e.label) for e in parsed.examples] == [
        ([("user", "q1"), ("assistant", "a1")], "positive"),
        ([("user", "multi\nline"), ("assistant", "a4")], "positive"),
        ([("user", "q6"), ("assistant", "a6")], "negative"),
    ]
    assert parsed.lines == 10
    assert parsed.problem_count == 3


def test_csv_headers_are_matched_loosely_and_optional_columns_used(tmp_path: Path) -> None:
    parsed = _parse(
        tmp_path,
        "h.csv",
        "\ufeff System , PROMPT ,Completion,Label,context\n"
        'Be brief.,q,a, Negative ,"[{""role"": ""user"", ""content"": ""before""}, '
        '{""role"": ""assistant"", ""content"": ""ok""}]"\n'
        " ,q2,a2,,\n",
    )
    assert _problems(parsed) == []
    first, second = parsed.examples
    assert _turns(first) == [
        ("system", "Be brief."),
        ("user", "before"),
        ("assistant", "ok"),
        ("user", "q"),
        ("assistant", "a"),
    ]
    assert first.label == "negative"
    assert _turns(second) == [("user", "q2"), ("assistant", "a2")]
    assert second.label == "positive"


def test_a_csv_missing_a_column_names_it(tmp_path: Path) -> None:
    assert _problems(_parse(tmp_path, "a.csv", "prompt,answer\nq,a\n")) == [
        "a.csv line 1: the header must name the columns `prompt` and `completion` (missing: completion)"
    ]
    assert _problems(_parse(tmp_path, "b.csv", "completion\nq\n")) == [
        "b.csv line 1: the header must name the columns `prompt` and `completion` (missing: prompt)"
    ]
    empty = _parse(tmp_path, "e.csv", "")
    assert (empty.examples, empty.problems, empty.lines) == ([], [], 0)


@pytest.mark.parametrize(
    ("cell", "problem"),
    [
        ('"[{""role"": ""user"", ""content"": 1"', "the context column is not valid JSON (Expecting"),
        ("1" * 5000, "the context column's JSON holds a number with too many digits"),
    ],
)
def test_a_bad_context_cell(tmp_path: Path, cell: str, problem: str) -> None:
    parsed = _parse(tmp_path, "c.csv", f"prompt,completion,context\nq,a,{cell}\nq2,a2,\n")
    [reported] = _problems(parsed)
    assert reported.startswith("c.csv line 2: " + problem)
    assert [_turns(e) for e in parsed.examples] == [[("user", "q2"), ("assistant", "a2")]]


def test_a_csv_that_stops_being_utf8_or_csv(tmp_path: Path) -> None:
    parsed = _parse(tmp_path, "l.csv", b"prompt,completion\nq,a\nq2,a2\ncaf\xe9,x\n")
    assert _problems(parsed) == ["l.csv line 4: not UTF-8 text (the rest of the file was not read)"]
    assert len(parsed.examples) == 2
    # Deep in a file larger than a read-ahead chunk: still the line of the bad byte, every row before it kept.
    rows = "".join(f"question {i},answer {i}\n" for i in range(2, 2000))
    deep = _parse(tmp_path, "d.csv", b"prompt,completion\n" + rows.encode() + b"caf\xe9,x\nq,a\n")
    assert _problems(deep) == ["d.csv line 2000: not UTF-8 text (the rest of the file was not read)"]
    assert len(deep.examples) == 1998
    broken = _parse(tmp_path, "n.csv", "prompt,completion\nq,a\nq\x00,b\n")
    if broken.problems:  # Python's csv module refuses NUL bytes in some versions
        assert _problems(broken)[0].startswith("n.csv line 3: not valid CSV")


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_csv_line_endings(tmp_path: Path, ending: str) -> None:
    parsed = _parse(
        tmp_path, "e.csv", ending.join(["prompt,completion", "q,a", '"two' + ending + 'lines",b', "x,y", ""])
    )
    assert _problems(parsed) == []
    assert [_turns(e)[0][1] for e in parsed.examples] == ["q", "two" + ending + "lines", "x"]
    assert [e.source_ref for e in parsed.examples] == ["upload:e.csv:2", "upload:e.csv:3", "upload:e.csv:5"]


def test_exported_csv_cells_read_back(tmp_path: Path) -> None:
    parsed = _parse(tmp_path, "x.csv", "prompt,completion\n'=1+1,'@home\n")
    assert _turns(parsed.examples[0]) == [("user", "=1+1"), ("assistant", "@home")]


# ------------------------------------------------------------------------------------------------ JSONL


def test_list_form_content_is_joined_text(tmp_path: Path) -> None:
    parts = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}, {"type": "text"}]
    parsed = _parse(
        tmp_path,
        "c.jsonl",
        _jsonl(
            {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": [parts[1]]}]},
            {"messages": [{"role": "user", "content": []}, {"role": "assistant", "content": "x"}]},
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": " "}]},
                    {"role": "assistant", "content": "x"},
                ]
            },
            {"messages": [{"role": "user", "content": [{"text": "no type"}]}, {"role": "assistant", "content": "x"}]},
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]},
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant"}]},
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  \n"}]},
        ),
    )
    assert [_turns(e) for e in parsed.examples] == [[("user", "Hello, world"), ("assistant", "world")]]
    assert _problems(parsed) == [
        "c.jsonl line 2: message 1 (user) has empty content",
        "c.jsonl line 3: message 1 (user) has empty content",
        "c.jsonl line 4: message 1 (user) has content other than text; only text can be trained here",
        "c.jsonl line 5: message 2 (assistant) has empty content",
        "c.jsonl line 6: message 2 (assistant) has empty content",
        "c.jsonl line 7: message 2 (assistant) has empty content",
    ]


def test_preference_pairs_with_list_form_content_and_labels(tmp_path: Path) -> None:
    pair = {
        "input": {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]},
        "preferred_output": [{"role": "assistant", "content": [{"type": "text", "text": "good"}]}],
        "non_preferred_output": [{"role": "assistant", "content": "bad"}],
    }
    parsed = _parse(
        tmp_path,
        "p.jsonl",
        _jsonl(
            pair,
            {**pair, "label": "NEGATIVE ", "non_preferred_output": [{"role": "assistant", "content": "worse"}]},
            {**pair, "input": {"messages": [{"role": "system", "content": "s"}]}},
            {**pair, "input": {"chat": []}},
            {**pair, "non_preferred_output": [pair["non_preferred_output"][0], pair["non_preferred_output"][0]]},
            {**pair, "non_preferred_output": [["assistant", "bad"]]},
            {"input": pair["input"], "non_preferred_output": pair["non_preferred_output"]},
        ),
    )
    assert [(e.kind, e.preferred, e.rejected, e.label) for e in parsed.examples] == [
        ("preference", "good", "bad", "positive"),
        ("preference", "good", "worse", "negative"),
    ]
    assert _turns(parsed.examples[0]) == [("system", "s"), ("user", "q")]
    assert _problems(parsed) == [
        "p.jsonl line 3: the input has no user message",
        "p.jsonl line 4: `input` must be an object with `messages`",
        "p.jsonl line 5: `non_preferred_output` must be a list holding one assistant message",
        "p.jsonl line 6: `non_preferred_output` must hold an assistant message",
        "p.jsonl line 7: a preference example needs `input`, `preferred_output` and `non_preferred_output`; "
        "`preferred_output` is missing",
    ]


def test_jsonl_lines_keep_their_numbers(tmp_path: Path) -> None:
    ok = {"prompt": "p", "completion": "c"}
    text = "\ufeff" + json.dumps(ok) + "\r\n\n   \n{broken\n" + json.dumps([ok]) + "\n" + "1" * 5000 + "\n"
    text += json.dumps({**ok, "completion": "d"}) + "\n"
    parsed = _parse(tmp_path, "n.jsonl", text)
    problems = _problems(parsed)
    assert problems[0].startswith("n.jsonl line 4: not valid JSON (Expecting property name enclosed in double")
    assert problems[0].endswith("at column 2)")
    assert problems[1:] == [
        "n.jsonl line 5: each line must be one JSON object",
        "n.jsonl line 6: the JSON holds a number with too many digits",
    ]
    assert [e.source_ref for e in parsed.examples] == ["upload:n.jsonl:1", "upload:n.jsonl:7"]
    assert parsed.lines == 7


def test_labels_and_the_file_wide_default(tmp_path: Path) -> None:
    parsed = _parse(
        tmp_path,
        "l.jsonl",
        _jsonl(
            {"prompt": "1", "completion": "a"},
            {"prompt": "2", "completion": "a", "label": "positive"},
            {"prompt": "3", "completion": "a", "label": " negative"},
            {"prompt": "4", "completion": "a", "label": ""},
            {"prompt": "5", "completion": "a", "label": None},
        ),
        label="negative",
    )
    assert [e.label for e in parsed.examples] == ["negative", "positive", "negative", "negative"]
    assert _problems(parsed) == ["l.jsonl line 4: `label` must be `positive` or `negative`"]


def test_roles_and_turn_order(tmp_path: Path) -> None:
    user = {"role": "user", "content": "q"}
    answer = {"role": "assistant", "content": "a"}
    parsed = _parse(
        tmp_path,
        "r.jsonl",
        _jsonl(
            {"messages": [{"role": "developer", "content": "d"}, user, answer]},
            {"messages": [user, answer, user]},
            {"messages": [answer]},
            {"messages": [{"content": "q"}, answer]},
            {"messages": [{"role": "`a`\nb" + "x" * 40, "content": "q"}, answer]},
            {"messages": []},
            {"prompt": "p", "completion": "c", "system": " "},
            {"prompt": "p", "completion": "c", "context": [user, answer]},
            {"completion": "c"},
            {"prompt": " ", "completion": "c"},
        ),
    )
    assert [_turns(e) for e in parsed.examples] == [
        [("developer", "d"), ("user", "q"), ("assistant", "a")],
        [("user", "q"), ("assistant", "a"), ("user", "p"), ("assistant", "c")],
    ]
    assert _problems(parsed) == [
        "r.jsonl line 2: the last message is the user's; it must be the assistant's reply",
        "r.jsonl line 3: no user message",
        "r.jsonl line 4: messages: message 1 has no role",
        "r.jsonl line 5: messages: message 1 has the role `'a'?bxxxxxxxxxxxxxxxxxxxxxxxxx…`; use system, user or "
        "assistant",
        "r.jsonl line 6: `messages` must be a non-empty list of messages",
        "r.jsonl line 7: the system message is empty",
        "r.jsonl line 9: the prompt is missing",
        "r.jsonl line 10: the prompt is empty",
    ]


def test_a_short_role_is_shown_whole(tmp_path: Path) -> None:
    parsed = _parse(tmp_path, "s.jsonl", _jsonl({"messages": [{"role": "bot", "content": "q"}]}))
    assert _problems(parsed) == [
        "s.jsonl line 1: messages: message 1 has the role `bot`; use system, user or assistant"
    ]


def test_the_token_limit(tmp_path: Path) -> None:
    text = _jsonl({"prompt": "word " * 10, "completion": "x"})
    assert len(_parse(tmp_path, "t.jsonl", text, max_tokens=11).examples) == 1
    assert _problems(_parse(tmp_path, "t.jsonl", text, max_tokens=10)) == [
        "t.jsonl line 1: about 11 tokens long; the limit is 10"
    ]
    big = _parse(tmp_path, "b.jsonl", _jsonl({"prompt": "word " * 2000, "completion": "x"}), max_tokens=1500)
    assert _problems(big) == ["b.jsonl line 1: about 2,001 tokens long; the limit is 1,500"]


# ------------------------------------------------------------------------------------------------ TXT


def test_txt_escapes_comments_and_tabs(tmp_path: Path) -> None:
    parsed = _parse(
        tmp_path,
        "t.txt",
        "a\\nb\tc\\td\\\\e\\q\n  # a comment\n\n   \nonly\ttwo\tthree\tfour\np\t \n",
    )
    assert [_turns(e) for e in parsed.examples] == [[("user", "a\nb"), ("assistant", "c\td\\e\\q")]]
    assert _problems(parsed) == [
        "t.txt line 5: 3 tabs; write tabs inside the text as \\t",
        "t.txt line 6: the completion is empty",
    ]


# ------------------------------------------------------------------------------------------------ the file


def test_only_the_first_problems_are_kept_but_all_are_counted(tmp_path: Path) -> None:
    parsed = _parse(tmp_path, "many.txt", "no tab\n" * (KEPT_PROBLEMS + 1))
    assert len(parsed.problems) == KEPT_PROBLEMS
    assert parsed.problem_count == KEPT_PROBLEMS + 1
    assert parsed.problems[-1].line == KEPT_PROBLEMS


def test_repeated_content_is_counted_once(tmp_path: Path) -> None:
    same = {"prompt": "p", "completion": "c"}
    parsed = _parse(tmp_path, "d.jsonl", _jsonl(same, same, {**same, "completion": "other"}, same))
    assert len(parsed.examples) == 2
    assert parsed.duplicates == 2


def test_examples_come_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "c.JSONL"
    path.write_text(_jsonl(*({"prompt": str(i), "completion": "c"} for i in range(5))))
    parsed = ParsedFile("c.JSONL")
    chunks = list(iter_examples(path, parsed, label="positive", origin="upload", max_tokens=100, chunk=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert parsed.examples == []
    assert parsed.lines == 5
    ones = list(iter_examples(path, ParsedFile("c"), label="positive", origin="upload", max_tokens=100, chunk=0))
    assert [len(c) for c in ones] == [1] * 5
    default = list(iter_examples(path, ParsedFile("c"), label="positive", origin="upload", max_tokens=100))
    assert [len(c) for c in default] == [5]
    assert [e.origin for e in default[0]] == ["upload"] * 5


def test_other_suffixes_are_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"`data.json`: only \.jsonl, \.csv and \.txt files can be imported"):
        iter_examples(tmp_path / "missing.json", ParsedFile("data.json"), label="positive", origin="u", max_tokens=9)


def test_problems_read_with_and_without_a_source() -> None:
    assert str(Problem("a.jsonl", 3, "bad")) == "a.jsonl line 3: bad"
    assert str(Problem("", 3, "bad")) == "line 3: bad"


# ------------------------------------------------------------------------------------------------ more edges


def test_assistant_weights_are_kept_checked_and_refused_elsewhere(tmp_path: Path) -> None:
    user = {"role": "user", "content": "q"}
    parsed = _parse(
        tmp_path,
        "w.jsonl",
        _jsonl(
            {"messages": [user, {"role": "assistant", "content": "a", "weight": 0}, user,
                          {"role": "assistant", "content": "b", "weight": 1}]},
            {"messages": [user, {"role": "assistant", "content": "c", "weight": 1}]},
            {"prompt": "p", "completion": "c", "context": [user, {"role": "assistant", "content": "d", "weight": 0}]},
            {"messages": [{**user, "weight": 1}, {"role": "assistant", "content": "a"}]},
            {"messages": [user, {"role": "assistant", "content": "a", "weight": True}]},
            {"messages": [user, {"role": "assistant", "content": "a", "weight": 2}]},
            {"messages": [user, {"role": "assistant", "content": "a", "weight": 0}]},
            {"input": {"messages": [{**user, "weight": 1}]},
             "preferred_output": [{"role": "assistant", "content": "x"}],
             "non_preferred_output": [{"role": "assistant", "content": "y"}]},
        ),
    )  # fmt: skip
    assert [[m.get("weight") for m in e.messages] for e in parsed.examples] == [
        [None, 0, None, 1],
        [None, 1],
        [None, 0, None, None],
    ]
    assert _problems(parsed) == [
        "w.jsonl line 4: messages: message 1 (user): `weight` applies to assistant messages only",
        "w.jsonl line 5: messages: message 2 (assistant): `weight` must be 0 (not learned) or 1",
        "w.jsonl line 6: messages: message 2 (assistant): `weight` must be 0 (not learned) or 1",
        "w.jsonl line 7: every assistant message has `weight` 0: there is nothing to learn from this example",
        "w.jsonl line 8: input messages: message 1 has a `weight`; only chat examples' messages take one",
    ]


def test_a_byte_order_mark_is_dropped_on_the_first_line_only(tmp_path: Path) -> None:
    ok = json.dumps({"prompt": "p", "completion": "c"})
    parsed = _parse(tmp_path, "b.jsonl", "\ufeff" + ok + "\n\ufeff" + ok.replace('"c"', '"d"') + "\n")
    assert len(parsed.examples) == 1
    assert _problems(parsed)[0].startswith("b.jsonl line 2: not valid JSON")
    table = _parse(tmp_path, "b.csv", "\ufeffprompt,completion\nq,a\n\ufeffr,b\n")
    assert [_turns(e)[0][1] for e in table.examples] == ["q", "\ufeffr"]


def test_lines_keep_their_trailing_characters(tmp_path: Path) -> None:
    parsed = _parse(tmp_path, "x.txt", "aX\tbX\r\n")
    assert _turns(parsed.examples[0]) == [("user", "aX"), ("assistant", "bX")]


def test_reading_goes_on_after_a_bad_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good = json.dumps({"prompt": "ok", "completion": "fine"}) + "\n"
    assert len(_parse(tmp_path, "u.jsonl", b"\xff\xfe\n" + good.encode()).examples) == 1
    assert len(_parse(tmp_path, "u.txt", b"caf\xe9\tx\nq\ta\n").examples) == 1
    from hypotez.ml.datasets import parsing as parsing_module

    real = parsing_module.example_from_record

    def fragile(record: dict[str, Any], **kwargs: Any) -> Any:
        if record.get("prompt") == "boom":
            raise TypeError("unhashable type: 'list'")
        return real(record, **kwargs)

    monkeypatch.setattr(parsing_module, "example_from_record", fragile)
    with caplog.at_level("WARNING", logger=parsing_module.__name__):
        parsed = _parse(tmp_path, "f.jsonl", json.dumps({"prompt": "boom", "completion": "x"}) + "\n" + good)
    assert len(parsed.examples) == 1
    [record] = [r for r in caplog.records if r.name == parsing_module.__name__]
    assert record.getMessage() == "unforeseen problem in f.jsonl line 1"
    assert record.exc_info is not None


def test_deep_nesting_and_csv_errors_are_exact(tmp_path: Path) -> None:
    assert _problems(_parse(tmp_path, "d.jsonl", "[" * 100_000 + "]" * 100_000 + "\n")) == [
        "d.jsonl line 1: the JSON is nested too deeply"
    ]
    assert _problems(_parse(tmp_path, "h.csv", b"pr\xffompt,completion\nq,a\n")) == [
        "h.csv line 1: not UTF-8 text (the rest of the file was not read)"
    ]
    huge = _parse(tmp_path, "f.csv", "prompt,completion\nq,a\nq," + "x" * 140_000 + "\n")
    assert _problems(huge) == ["f.csv line 3: not valid CSV (field larger than field limit (131072))"]


def test_chat_and_preference_examples_carry_label_origin_and_line(tmp_path: Path) -> None:
    pair = {
        "input": {"messages": [{"role": "user", "content": "q"}]},
        "preferred_output": [{"role": "assistant", "content": "good"}],
        "non_preferred_output": [{"role": "assistant", "content": "bad"}],
    }
    chat = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "label": "negative"}
    parsed = _parse(tmp_path, "o.jsonl", _jsonl(chat, pair))
    assert [(e.label, e.origin, e.source_ref) for e in parsed.examples] == [
        ("negative", "upload", "upload:o.jsonl:1"),
        ("positive", "upload", "upload:o.jsonl:2"),
    ]


@pytest.mark.parametrize("key", ["input", "preferred_output", "non_preferred_output"])
def test_one_preference_key_alone_makes_a_preference_line(tmp_path: Path, key: str) -> None:
    missing = "preferred_output" if key == "input" else "input"
    assert _problems(_parse(tmp_path, "k.jsonl", _jsonl({key: []}))) == [
        "k.jsonl line 1: a preference example needs `input`, `preferred_output` and `non_preferred_output`; "
        f"`{missing}` is missing"
    ]


def test_values_named_in_problems(tmp_path: Path) -> None:
    parsed = _parse(
        tmp_path,
        "v.jsonl",
        _jsonl(
            {"messages": [{"role": "user", "content": [{"type": "text", "text": None}]},
                          {"role": "assistant", "content": "a"}]},
            {"messages": [{"role": "user", "content": "\ud800"}, {"role": "assistant", "content": "a"}]},
            {"messages": [{"role": "r" * 30, "content": "q"}]},
            {"messages": [{"role": "r" * 31, "content": "q"}]},
        ),
    )  # fmt: skip
    assert _problems(parsed) == [
        "v.jsonl line 1: message 1 (user): a text part's `text` must be text, not null",
        "v.jsonl line 2: message 1 (user) holds an invalid character (an unpaired \\u surrogate escape)",
        f"v.jsonl line 3: messages: message 1 has the role `{'r' * 30}`; use system, user or assistant",
        f"v.jsonl line 4: messages: message 1 has the role `{'r' * 30}…`; use system, user or assistant",
    ]


def test_a_thousand_examples_a_chunk_by_default(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("".join(f"q{i}\ta\n" for i in range(1001)))
    chunks = list(iter_examples(path, ParsedFile("t"), label="positive", origin="upload", max_tokens=100))
    assert [len(c) for c in chunks] == [1000, 1]
