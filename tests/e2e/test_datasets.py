"""``/dataset`` end to end: uploads in every format, validation by line number, directories, builds from
corrections and feedback, exports in OpenAI's fine-tuning formats, versions, archives; and the functions the
training code calls (``load_examples``, ``split_examples``)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import io
import json
import threading
import time
import zipfile
from typing import TYPE_CHECKING, Any

import hikari
import pytest
import pytest_asyncio
from sqlalchemy import select

from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.ml import datasets as datasets_module
from hypotez.ml.datasets import catalog as catalog_module
from hypotez.ml.datasets import load_examples, parse_file, split_examples
from hypotez.ml.datasets import loading as loading_module
from hypotez.ml.datasets import parsing as parsing_module
from hypotez.storage.models import AuditEntry, Correction, Dataset, DatasetExample, Feedback
from hypotez.storage.repositories import datasets as repositories_module
from tests.conftest import approve_pending, running_hypotez
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    ADMIN_USER_ID,
    GUILD_ID,
    Attachment,
    ChannelRef,
    autocomplete,
    button,
    member_payload,
    said,
    slash,
    user_payload,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.discord_rest import RecordedFile
    from tests.fakes.interactions import InteractionResult
    from tests.fakes.openai_api import FakeOpenAI

CURATOR_ROLE = 1_100_000_000_000_000_555
#: A member with no administrator permission and no grants: curate is not theirs.
MEMBER = member_payload(user_payload(1_100_000_000_000_000_999, "bob"))


# ------------------------------------------------------------------------------------------------- helpers


#: The initial response of a command that defers: "thinking...", the answer follows.
DEFERRED = 5


def sent_embeds(result: InteractionResult) -> list[dict[str, Any]]:
    """The embeds the command sent: in its initial response, or (deferred) in its edits and follow-ups."""
    embeds = [] if result.followups else list(result.embeds)
    for call in result.followups:
        embeds += list((call.json or {}).get("embeds") or [])
    return embeds


def sent_files(result: InteractionResult) -> list[RecordedFile]:
    files = list(result.files)
    for call in result.followups:
        files += call.files
    return files


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def parse_jsonl(content: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in content.decode("utf-8").splitlines() if line.strip()]


def assert_openai_chat_line(record: dict[str, Any]) -> None:
    """OpenAI's supervised fine-tuning line: ``{"messages": [...]}``, ending with the assistant's message."""
    assert set(record) == {"messages"}
    messages = record["messages"]
    assert messages
    for message in messages:
        assert set(message) == {"role", "content"}
        assert message["role"] in {"system", "developer", "user", "assistant"}
        assert isinstance(message["content"], str)
        assert message["content"].strip()
    assert messages[-1]["role"] == "assistant"


def assert_openai_preference_line(record: dict[str, Any]) -> None:
    """OpenAI's DPO line: ``input.messages``, one assistant message in each output."""
    assert set(record) == {"input", "preferred_output", "non_preferred_output"}
    assert set(record["input"]) == {"messages"}
    assert record["input"]["messages"][-1]["role"] == "user"
    for key in ("preferred_output", "non_preferred_output"):
        [output] = record[key]
        assert output["role"] == "assistant"
        assert isinstance(output["content"], str)
        assert output["content"].strip()
    assert record["preferred_output"] != record["non_preferred_output"]


async def upload(
    hz: RunningBot,
    filename: str,
    content: bytes,
    *,
    name: str = "basics",
    positive: bool | None = None,
    skip_bad: bool = False,
    user: dict[str, Any] = ADMIN_MEMBER,
) -> InteractionResult:
    attachment = hz.rest.host(Attachment(filename, content, content_type="text/plain"))
    options: dict[str, Any] = {"file": attachment, "name": name}
    if positive is not None:
        options["positive"] = positive
    if skip_bad:
        options["skip_bad"] = True
    return await hz.send(slash("dataset", options, subcommand="upload", user=user, attachments=[attachment]))


async def dataset_rows(hz: RunningBot, name: str) -> list[DatasetExample]:
    dataset = await hz.services.datasets.resolve(GUILD_ID, name)
    return await hz.services.datasets.examples(dataset.id)


async def all_datasets(hz: RunningBot) -> list[Dataset]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(Dataset).order_by(Dataset.id))).all())


def area_of(hz: RunningBot, guild_id: int = GUILD_ID) -> Path:
    """A server's area of the data directory."""
    return hz.settings.data_dir / "guilds" / str(guild_id)


async def audit_actions(hz: RunningBot) -> list[str]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all())


async def assert_show_counts_what_training_uses(hz: RunningBot, name: str) -> None:
    """``/dataset show``'s figures, counted by the database, agree with the records training reads."""
    info = await hz.services.catalog.describe(GUILD_ID, name)
    supervised = await load_examples(hz.services.db, name, "supervised", guild_id=GUILD_ID)
    pairs = await load_examples(hz.services.db, name, "preference", guild_id=GUILD_ID)
    assert (info.supervised, info.preference) == (len(supervised), len(pairs))
    assert info.sample_chat == (supervised[0] if supervised else None)
    assert info.sample_pair == (pairs[0] if pairs else None)
    exact = datasets_module.training_costs(sum(datasets_module.record_tokens(r) for r in supervised))
    tokens = sum(datasets_module.record_tokens(r) for r in supervised)
    # An estimate: the per-message overhead is left out, and a pair's unused answer taken out by its length.
    assert 0.5 * tokens <= info.supervised_tokens <= tokens, (info.supervised_tokens, tokens)
    assert set(info.costs) == set(exact)


async def chat(hz: RunningBot, question: str, answer: str) -> dict[str, Any]:
    hz.openai.reply_with(answer)
    result = await hz.send(slash("chat", {"message": question}))
    original = result.original_message
    assert original is not None
    return original


@pytest_asyncio.fixture
async def strict_hz(bot_settings: Settings, openai_fake: FakeOpenAI) -> AsyncIterator[RunningBot]:
    """hypotez with a tiny upload limit (1000 bytes) and example limit (40 tokens)."""
    settings = bot_settings.model_copy(update={"max_upload_bytes": 1000, "dataset_max_example_tokens": 40})
    async with running_hypotez(settings, openai_fake) as running:
        yield running


# ------------------------------------------------------------------------------------------------- uploads

CHAT_LINES = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4"}]},
    {"messages": [{"role": "user", "content": "Capital of Peru?"}, {"role": "assistant", "content": "Lima."}]},
]  # fmt: skip
PREFERENCE_LINE = {
    "input": {"messages": [{"role": "user", "content": "Capital of Australia?"}]},
    "preferred_output": [{"role": "assistant", "content": "Canberra."}],
    "non_preferred_output": [{"role": "assistant", "content": "Sydney."}],
}

FORMATS: dict[str, tuple[str, bytes, list[tuple[str, list[dict[str, str]], str | None, str | None]]]] = {
    "jsonl-chat": (
        "chat.jsonl",
        jsonl(CHAT_LINES),
        [("chat", CHAT_LINES[0]["messages"], None, None), ("chat", CHAT_LINES[1]["messages"], None, None)],
    ),
    "jsonl-prompt-completion": (
        "pc.jsonl",
        jsonl([{"prompt": "Hi", "completion": "Hello!"}]),
        [("chat", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], None, None)],
    ),
    "jsonl-preference": (
        "pref.jsonl",
        jsonl([PREFERENCE_LINE]),
        [("preference", [{"role": "user", "content": "Capital of Australia?"}], "Canberra.", "Sydney.")],
    ),
    "csv": (
        "pairs.csv",
        b'prompt,completion\nHi,Hello!\n"Multi\nline?","Yes, ""quoted"" too"\n',
        [
            ("chat", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], None, None),
            (
                "chat",
                [{"role": "user", "content": "Multi\nline?"}, {"role": "assistant", "content": 'Yes, "quoted" too'}],
                None,
                None,
            ),
        ],
    ),
    "txt": (
        "lines.txt",
        "# greetings\nHi\tHello!\n\nДва слова\tLine one\\nline two\\ttabbed \\\\ done\n".encode(),
        [
            ("chat", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], None, None),
            (
                "chat",
                [
                    {"role": "user", "content": "Два слова"},
                    {"role": "assistant", "content": "Line one\nline two\ttabbed \\ done"},
                ],
                None,
                None,
            ),
        ],
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("shape", list(FORMATS))
async def test_each_format_is_imported(hz: RunningBot, shape: str) -> None:
    filename, content, expected = FORMATS[shape]
    result = await upload(hz, filename, content, positive=shape != "txt")
    assert result.ephemeral
    assert f"Imported {len(expected)} example" in said(result)
    assert "`basics` (version 1)" in said(result)
    rows = await dataset_rows(hz, "basics")
    assert [(r.kind, r.messages, r.preferred, r.rejected) for r in rows] == expected
    assert {r.origin for r in rows} == {"upload"}
    assert {r.label for r in rows} == {"negative" if shape == "txt" else "positive"}
    assert all(r.token_count > 0 for r in rows)
    assert rows[0].source_ref == f"upload:{filename}:{1 if shape != 'csv' and shape != 'txt' else 2}"
    assert await audit_actions(hz) == ["dataset.upload"]
    # The temporary download is gone.
    assert not any((area_of(hz) / "tmp").iterdir())


@pytest.mark.asyncio
async def test_validation_errors_are_reported_by_line_and_nothing_is_imported(strict_hz: RunningBot) -> None:
    hz = strict_hz
    lines = [
        json.dumps({"prompt": "ok", "completion": "fine"}),  # 1 good
        '{"messages": [',  # 2 bad JSON
        json.dumps({"messages": [{"content": "no role"}, {"role": "assistant", "content": "x"}]}),  # 3
        json.dumps({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "x"}]}),  # 4
        json.dumps({"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "q"}]}),  # 5
        json.dumps({"prompt": "long", "completion": "word " * 60}),  # 6 over-long
        json.dumps({"prompt": "good", "completion": "too"}),  # 7 good
    ]
    content = ("\n".join(lines) + "\n").encode()
    assert len(content) <= 1000
    refused = await upload(hz, "mixed.jsonl", content)
    text = said(refused)
    assert "Nothing was imported" in text
    assert "5 problems" in text
    assert "line 2: not valid JSON" in text
    assert "line 3: messages: message 1 has no role" in text
    assert "line 4: message 1 (user) has empty content" in text
    assert "line 5: the last message is the user's; it must be the assistant's reply" in text
    assert "line 6: about 61 tokens long; the limit is 40" in text
    assert "skip_bad:True" in text
    assert len(text) <= 2000
    assert await all_datasets(hz) == []
    assert await audit_actions(hz) == ["dataset.upload.rejected"]

    kept = await upload(hz, "mixed.jsonl", content, skip_bad=True)
    assert "Imported 2 examples" in said(kept)
    assert "Skipped 5 bad lines" in said(kept)
    rows = await dataset_rows(hz, "basics")
    assert [r.messages[-1]["content"] for r in rows] == ["fine", "too"]


def test_every_problem_in_every_format_has_its_line_number(tmp_path: Path) -> None:
    def problems(name: str, text: str | bytes) -> list[str]:
        path = tmp_path / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        parsed = parse_file(path, label="positive", origin="upload", source="", max_tokens=50)
        return [str(p) for p in parsed.problems]

    preference = [
        {"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": []},
        {"input": {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
         "preferred_output": [], "non_preferred_output": []},
        {**PREFERENCE_LINE, "non_preferred_output": PREFERENCE_LINE["preferred_output"]},
        {**PREFERENCE_LINE, "preferred_output": [{"role": "user", "content": "x"}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                      {"role": "assistant", "content": "x"}]},
        {"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "x"}]},
        {"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "x"}]},
        [1, 2],
        {"prompt": "p", "completion": "c", "label": "maybe"},
        {"prompt": "p"},
        {"text": "what"},
    ]  # fmt: skip
    assert problems("p.jsonl", "".join(json.dumps(p) + "\n" for p in preference)) == [
        "line 1: a preference example needs `input`, `preferred_output` and `non_preferred_output`; "
        "`non_preferred_output` is missing",
        "line 2: the last input message is the assistant's; the input must end with the user's turn",
        "line 3: `preferred_output` and `non_preferred_output` are the same",
        "line 4: `preferred_output` must hold an assistant message",
        "line 5: message 1 (user) has content other than text; only text can be trained here",
        "line 6: messages: message 1 has the role `robot`; use system, user or assistant",
        "line 7: no user message",
        "line 8: each line must be one JSON object",
        "line 9: `label` must be `positive` or `negative`",
        "line 10: the completion is missing",
        "line 11: expected `messages`; or `prompt` and `completion`; or `input`, `preferred_output` and "
        "`non_preferred_output`",
    ]
    assert problems("bad.csv", 'prompt,completion\nok,fine\n"multi\nline",\nonly-one\nq,"' + "w " * 60 + '"\n') == [
        "line 3: the completion is empty",
        "line 5: 1 columns; the header has 2",
        "line 6: about 61 tokens long; the limit is 50",
    ]
    assert problems("nohead.csv", "question,answer\nq,a\n") == [
        "line 1: the header must name the columns `prompt` and `completion` (missing: prompt, completion)"
    ]
    assert problems("bad.txt", "ok\tfine\nno tab here\n# comment\na\tb\tc\n\t\n") == [
        "line 2: no tab between the prompt and the completion",
        "line 4: 2 tabs; write tabs inside the text as \\t",
        "line 5: the prompt is empty",
    ]
    assert problems("latin1.txt", "ok\tfine\ncaf\xe9\tbad".encode("latin-1")) == ["line 2: not UTF-8 text"]


#: Lines whose fields have the wrong JSON types, and the problem each is reported as (never a crash).
WRONG_TYPES: list[tuple[str, str]] = [
    ('{"messages": [{"role": ["user"], "content": "x"}, {"role": "assistant", "content": "y"}]}',
     "messages: message 1's role must be text (system, user or assistant), not a list"),
    ('{"messages": [{"role": {"r": "user"}, "content": "x"}, {"role": "assistant", "content": "y"}]}',
     "messages: message 1's role must be text (system, user or assistant), not an object"),
    ('{"messages": [{"role": 1, "content": "x"}, {"role": "assistant", "content": "y"}]}',
     "messages: message 1's role must be text (system, user or assistant), not a number"),
    ('{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "y"}]}',
     "message 1 (user): content must be text, not a number"),
    ('{"messages": [{"role": "user", "content": {"text": "x"}}, {"role": "assistant", "content": "y"}]}',
     "message 1 (user): content must be text, not an object"),
    ('{"messages": [{"role": "user", "content": [{"type": "text", "text": 7}]}, '
     '{"role": "assistant", "content": "y"}]}',
     "message 1 (user): a text part's `text` must be text, not a number"),
    ('{"messages": [{"role": "user", "content": [["text"]]}, {"role": "assistant", "content": "y"}]}',
     "message 1 (user) has content other than text; only text can be trained here"),
    ('{"messages": {"role": "user", "content": "x"}}', "`messages` must be a non-empty list of messages"),
    ('{"messages": "hello"}', "`messages` must be a non-empty list of messages"),
    ('{"messages": ["user: x", "assistant: y"]}', "messages: message 1 is not an object"),
    ('{"messages": [null]}', "messages: message 1 is not an object"),
    ('{"prompt": 42, "completion": "x"}', "the prompt must be text, not a number"),
    ('{"prompt": "x", "completion": ["y"]}', "the completion must be text, not a list"),
    ('{"prompt": "x", "completion": true}', "the completion must be text, not true/false"),
    ('{"prompt": "x", "completion": "y", "system": 3}', "the system message must be text, not a number"),
    ('{"prompt": "x", "completion": "y", "context": {"role": "user"}}', "`context` must be a non-empty list"),
    ('{"prompt": "x", "completion": "y", "context": [{"role": ["user"], "content": "z"}]}',
     "context: message 1's role must be text"),
    ('{"prompt": "x", "completion": "y", "label": 1}', "`label` must be `positive` or `negative`"),
    ('{"prompt": "x", "completion": "y", "label": ["positive"]}', "`label` must be `positive` or `negative`"),
    ('{"prompt": "\\ud800", "completion": "y"}', "the prompt holds an invalid character"),
    ('{"input": [], "preferred_output": [], "non_preferred_output": []}', "`input` must be an object with `messages`"),
    ('{"input": {"messages": [{"role": ["user"], "content": "q"}]}, '
     '"preferred_output": [{"role": "assistant", "content": "a"}], '
     '"non_preferred_output": [{"role": "assistant", "content": "b"}]}',
     "input messages: message 1's role must be text"),
    ('{"input": {"messages": [{"role": "user", "content": "q"}]}, '
     '"preferred_output": [{"role": ["assistant"], "content": "a"}], '
     '"non_preferred_output": [{"role": "assistant", "content": "b"}]}',
     "`preferred_output` must hold an assistant message"),
    ('{"input": {"messages": [{"role": "user", "content": "q"}]}, '
     '"preferred_output": {"role": "assistant", "content": "a"}, '
     '"non_preferred_output": [{"role": "assistant", "content": "b"}]}',
     "`preferred_output` must be a list holding one assistant message"),
    ('{"input": {"messages": [{"role": "user", "content": "q"}]}, '
     '"preferred_output": [{"role": "assistant", "content": 1.5}], '
     '"non_preferred_output": [{"role": "assistant", "content": "b"}]}',
     "`preferred_output`: content must be text, not a number"),
    ("[" * 100_000 + "]" * 100_000, "the JSON is nested too deeply"),
    ('{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}", "the JSON is nested too deeply"),
]  # fmt: skip


def test_wrong_json_types_are_line_numbered_problems(tmp_path: Path) -> None:
    path = tmp_path / "types.jsonl"
    good = json.dumps({"prompt": "ok", "completion": "fine"})
    path.write_text("\n".join([good, *(line for line, _ in WRONG_TYPES), good]) + "\n")
    parsed = parse_file(path, label="positive", origin="upload", source="types.jsonl", max_tokens=1000)
    assert len(parsed.examples) == 1  # the second good line is a duplicate of the first
    assert parsed.duplicates == 1
    problems = [str(p) for p in parsed.problems]
    assert len(problems) == len(WRONG_TYPES)
    for number, (problem, (_, message)) in enumerate(zip(problems, WRONG_TYPES, strict=True), start=2):
        assert problem.startswith(f"types.jsonl line {number}: "), problem
        assert message in problem, (number, problem)
    # CSV: a context column of the wrong shape, or nested too deeply.
    table = tmp_path / "types.csv"
    table.write_text(
        "prompt,completion,context\n"
        'q,a,"{""role"": ""user""}"\n'
        'q,a,"[{""role"": [""user""], ""content"": ""x""}]"\n'
        f"q,a,{'[' * 100_000}\n"
        'q,a,"[{""role"": ""user"", ""content"": ""x""}]"\n'
    )
    parsed = parse_file(table, label="positive", origin="upload", source="", max_tokens=1000)
    assert [str(p) for p in parsed.problems] == [
        "line 2: `context` must be a non-empty list of messages",
        "line 3: context: message 1's role must be text (system, user or assistant), not a list",
        "line 4: the context column's JSON is nested too deeply",
    ]
    assert len(parsed.examples) == 1


def test_an_unforeseen_shape_is_still_a_problem_of_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = datasets_module.example_from_record

    def fragile(record: dict[str, Any], **kwargs: Any) -> Any:
        if record.get("prompt") == "boom":
            raise TypeError("unhashable type: 'list'")
        return real(record, **kwargs)

    monkeypatch.setattr(parsing_module, "example_from_record", fragile)
    path = tmp_path / "a.jsonl"
    path.write_text('{"prompt": "ok", "completion": "fine"}\n{"prompt": "boom", "completion": "x"}\n')
    parsed = parse_file(path, label="positive", origin="upload", source="a.jsonl", max_tokens=100)
    assert len(parsed.examples) == 1
    assert [str(p) for p in parsed.problems] == [
        "a.jsonl line 2: this line cannot be read as an example (check the types of its fields)"
    ]


@pytest.mark.asyncio
async def test_a_list_as_a_role_is_reported_by_line_not_as_an_error(hz: RunningBot) -> None:
    content = b'{"prompt": "fine", "completion": "ok"}\n{"messages":[{"role":["user"],"content":"x"}]}\n'
    refused = await upload(hz, "roles.jsonl", content)
    assert "Nothing was imported: `roles.jsonl` has 1 problem." in said(refused)
    assert "line 2: messages: message 1's role must be text (system, user or assistant), not a list" in said(refused)
    assert "Something went wrong" not in said(refused)
    kept = await upload(hz, "roles.jsonl", content, skip_bad=True)
    assert "Imported 1 example into `basics`" in said(kept)
    assert "Skipped 1 bad line" in said(kept)


@pytest.mark.asyncio
async def test_oversize_upload_is_refused_before_downloading(
    strict_hz: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads: list[str] = []

    def no_download(self: hikari.files.WebResource, **_: object) -> object:
        downloads.append(self.url)
        raise AssertionError("the attachment must not be downloaded")

    monkeypatch.setattr(hikari.files.WebResource, "stream", no_download)
    big = jsonl([{"prompt": f"q{i}", "completion": "a" * 20} for i in range(40)])
    assert len(big) > 1000
    result = await upload(strict_hz, "big.jsonl", big)
    assert result.ephemeral
    assert "the upload limit is 1,000 bytes (HYPOTEZ_MAX_UPLOAD_BYTES)" in said(result)
    assert downloads == []
    assert await all_datasets(strict_hz) == []
    wrong = await upload(strict_hz, "notes.pdf", b"%PDF")
    assert "is not a .jsonl, .csv, .txt file" in said(wrong)


@pytest.mark.asyncio
async def test_upload_is_streamed_to_disk_and_parsed_off_the_event_loop(
    hz: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_read(self: hikari.files.WebResource) -> bytes:
        raise AssertionError("attachments are streamed, not read whole")

    threads: list[str] = []
    real_example = parsing_module.example_from_record

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real_example(*args, **kwargs)

    monkeypatch.setattr(hikari.Attachment, "read", no_read)
    monkeypatch.setattr(parsing_module, "example_from_record", spy)  # each line, in the chunk reader
    content = jsonl([{"prompt": f"question {i}", "completion": f"answer {i}"} for i in range(3000)])
    assert len(content) > 100_000  # several chunks
    result = await upload(hz, "many.jsonl", content)
    assert "Imported 3,000 examples" in said(result)
    assert threads
    assert threading.main_thread().name not in threads


@pytest.mark.asyncio
async def test_dataset_work_runs_off_the_event_loop(hz: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading rows, building records and examples, hashing and writing run in worker threads; commands that
    may work long defer first."""
    calls: list[tuple[str, str]] = []

    def spy(module: Any, name: str) -> None:
        real = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            first = args[-1] if name == "_orm_examples" else args[0]
            if name == "build_examples" or len(first) > 1:  # a one-row sample for /dataset show is not work
                calls.append((name, threading.current_thread().name))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for name in ("supervised_records", "preference_records", "csv_rows", "build_examples"):
        spy(catalog_module, name)
    for name in ("supervised_records", "preference_records"):
        spy(loading_module, name)
    for name in ("_insert_rows", "_orm_examples"):
        spy(repositories_module, name)

    records = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(50)]
    await upload(hz, "a.jsonl", jsonl([*records, PREFERENCE_LINE]))
    await upload(hz, "b.txt", b"q1\tWrong.\nq2\tAlso wrong.\n", positive=False)
    corrected = await chat(hz, "Capital of Australia?", "Sydney.")
    await hz.send(slash("correct", {"message_id": corrected["id"], "correction": "Canberra."}))
    await hz.send(slash("dataset", {"name": "built"}, subcommand="build", user=ADMIN_MEMBER))
    shown = await hz.send(slash("dataset", {"name": "basics"}, subcommand="show", user=ADMIN_MEMBER))
    assert shown.response_type == DEFERRED
    for fmt in ("openai-chat", "preference", "csv"):
        exported = await hz.send(
            slash("dataset", {"name": "basics", "format": fmt}, subcommand="export", user=ADMIN_MEMBER)
        )
        assert exported.response_type == DEFERRED
        assert sent_files(exported)
    assert len(await load_examples(hz.services.db, "basics", "supervised", guild_id=GUILD_ID)) == 51
    await hz.services.datasets.examples((await hz.services.datasets.resolve(GUILD_ID, "basics")).id)
    archived = await hz.send(slash("dataset", {"name": "basics"}, subcommand="archive", user=ADMIN_MEMBER))
    assert archived.response_type == DEFERRED
    assert {name for name, _ in calls} == {
        "supervised_records",
        "preference_records",
        "csv_rows",
        "build_examples",
        "_insert_rows",
        "_orm_examples",
    }
    assert [c for c in calls if c[1] == threading.main_thread().name] == []


@contextlib.asynccontextmanager
async def longest_stall(tick_s: float = 0.002) -> AsyncIterator[list[float]]:
    """The longest time the event loop went without running a ticker of ``tick_s`` (2 ms), in seconds (one-item
    list).

    CPython's cyclic garbage collector pauses every thread while it runs, for as long as the heap is large; it is
    switched off meanwhile, so what is measured is the work this code leaves on the loop."""
    worst = [0.0]
    stop = asyncio.Event()

    async def tick() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(tick_s)
            worst[0] = max(worst[0], time.perf_counter() - started - tick_s)

    enabled = gc.isenabled()
    gc.disable()
    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    try:
        yield worst
    finally:
        stop.set()
        await ticker
        if enabled:
            gc.enable()


@pytest.mark.asyncio
async def test_a_large_dataset_does_not_stall_the_event_loop(hz: RunningBot) -> None:
    count = 15_000
    lines = [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"question {i}"},
                      {"role": "assistant", "content": f"answer {i} " * 8}]}
        for i in range(count)
    ]  # fmt: skip
    path = _write(area_of(hz) / "seed.jsonl", jsonl(lines))
    parsed = parse_file(path, label="positive", origin="upload", source="seed.jsonl", max_tokens=1000)
    catalog = hz.services.catalog
    stalls: dict[str, float] = {}

    async with longest_stall() as worst:
        _, added, _ = await hz.services.datasets.add_version(GUILD_ID, "large", parsed.examples, created_by=None)
    stalls["add_version"] = worst[0]
    assert added == count
    async with longest_stall() as worst:
        info = await catalog.describe(GUILD_ID, "large")
    stalls["describe"] = worst[0]
    assert (info.counts.total, info.supervised, info.preference) == (count, count, 0)
    async with longest_stall() as worst:
        exported = await catalog.export(guild_id=GUILD_ID, actor_id=ADMIN_USER_ID, ref="large", fmt="openai-chat")
    stalls["export"] = worst[0]
    assert exported.train == count
    async with longest_stall() as worst:
        records = await load_examples(hz.services.db, "large", "supervised", guild_id=GUILD_ID)
    stalls["load_examples"] = worst[0]
    assert records[0] == lines[0]
    assert len(records) == count
    async with longest_stall() as worst:
        await catalog.archive(guild_id=GUILD_ID, actor_id=ADMIN_USER_ID, name="large")
    stalls["archive"] = worst[0]
    # Before, storing the examples alone held the loop for seconds; now each step leaves it a little at a time.
    assert max(stalls.values()) < 0.25, stalls  # generous: the machine is shared


# ------------------------------------------------------------------------------------------------- versions


@pytest.mark.asyncio
async def test_uploading_again_makes_a_new_version_that_keeps_the_old_examples(hz: RunningBot) -> None:
    await upload(hz, "a.jsonl", jsonl([{"prompt": "a", "completion": "1"}, {"prompt": "b", "completion": "2"}]))
    second = await upload(
        hz, "b.jsonl", jsonl([{"prompt": "b", "completion": "2"}, {"prompt": "c", "completion": "3"}])
    )
    assert "Imported 1 example into `basics` (version 2)" in said(second)
    assert "1 duplicate was left out" in said(second)
    latest = await dataset_rows(hz, "basics")
    assert [r.messages[0]["content"] for r in latest] == ["a", "b", "c"]
    first = await hz.services.datasets.resolve(GUILD_ID, "basics@1")
    assert [r.messages[0]["content"] for r in await hz.services.datasets.examples(first.id)] == ["a", "b"]

    same = await upload(hz, "c.jsonl", jsonl([{"prompt": "a", "completion": "1"}]))
    assert "Nothing new: every example is already in `basics` (version 2)" in said(same)
    assert [d.version for d in await all_datasets(hz)] == [1, 2]

    reserved = await upload(hz, "d.jsonl", jsonl([{"prompt": "a", "completion": "1"}]), name="corrections")
    assert "`corrections` is kept up to date from members' corrections" in said(reserved)
    bad_name = await upload(hz, "d.jsonl", jsonl([{"prompt": "a", "completion": "1"}]), name="../etc")
    assert "cannot name a dataset" in said(bad_name)


# ------------------------------------------------------------------------------------------------- select


@pytest.mark.asyncio
async def test_select_a_directory_offered_by_autocomplete_and_archive_it(hz: RunningBot) -> None:
    area = area_of(hz) / "datasets"
    (area / "cats" / "more").mkdir(parents=True)
    (area / "dogs").mkdir()
    (area / "cats" / "a.jsonl").write_text(json.dumps({"prompt": "Cats?", "completion": "Purr."}) + "\n")
    (area / "cats" / "more" / "b.txt").write_text("Meow?\tMeow.\n")
    (area / "cats" / "readme.md").write_text("not a dataset file")

    offered = await hz.send(autocomplete("dataset", {"path": "ca"}, "path", subcommand="select", user=ADMIN_MEMBER))
    assert [c["value"] for c in offered.choices] == ["cats", "cats/more"]
    everything = await hz.send(autocomplete("dataset", {"path": ""}, "path", subcommand="select", user=ADMIN_MEMBER))
    assert [c["value"] for c in everything.choices] == ["cats", "dogs", "cats/more"]
    hidden = await hz.send(autocomplete("dataset", {"path": ""}, "path", subcommand="select", user=MEMBER))
    assert hidden.choices == []

    result = await hz.send(
        slash(
            "dataset",
            {"path": "cats", "positive": False, "archive": True},
            subcommand="select",
            user=ADMIN_MEMBER,
        )
    )
    text = said(result)
    assert "Imported 2 examples into `cats` (version 1) from 2 files" in text
    assert "archived as `archive/datasets_cats-" in text
    rows = await dataset_rows(hz, "cats")
    assert [(r.origin, r.label, r.source_ref) for r in rows] == [
        ("directory", "negative", "directory:a.jsonl:1"),
        ("directory", "negative", "directory:more/b.txt:1"),
    ]
    assert not (area / "cats").exists()
    [archive] = list((area_of(hz) / "archive").glob("*.zip"))
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert sorted(f["path"] for f in manifest["files"]) == ["a.jsonl", "more/b.txt", "readme.md"]
        assert zf.read("more/b.txt") == b"Meow?\tMeow.\n"
    assert await audit_actions(hz) == ["dataset.select", "archive.create"]

    for path, message in [
        ("../archive", "contains `..`"),
        ("/etc", "is an absolute path"),
        ("nope", "There is nothing at `nope`"),
        ("dogs", "has no .jsonl, .csv or .txt files"),
    ]:
        refused = await hz.send(slash("dataset", {"path": path}, subcommand="select", user=ADMIN_MEMBER))
        assert message in said(refused), path


@pytest.mark.asyncio
async def test_select_archives_the_directory_by_default_and_can_keep_it(hz: RunningBot) -> None:
    area = area_of(hz) / "datasets"
    for name in ("birds", "fish"):
        (area / name).mkdir(parents=True)
        (area / name / "a.txt").write_text(f"{name.capitalize()}?\tYes.\n")
    used = await hz.send(slash("dataset", {"path": "birds"}, subcommand="select", user=ADMIN_MEMBER))
    assert "Imported 1 example into `birds`" in said(used)
    assert "The directory was archived as `archive/datasets_birds-" in said(used)
    assert not (area / "birds").exists()
    [archive] = list((area_of(hz) / "archive").glob("*.zip"))
    with zipfile.ZipFile(archive) as zf:
        assert zf.read("a.txt") == b"Birds?\tYes.\n"
    kept = await hz.send(slash("dataset", {"path": "fish", "archive": False}, subcommand="select", user=ADMIN_MEMBER))
    assert "Imported 1 example into `fish`" in said(kept)
    assert "archived" not in said(kept)
    assert (area / "fish" / "a.txt").read_text() == "Fish?\tYes.\n"
    assert len(list((area_of(hz) / "archive").glob("*.zip"))) == 1


# ------------------------------------------------------------------------------------------------- build


@pytest.mark.asyncio
async def test_build_from_corrections_and_feedback_exports_openai_formats(hz: RunningBot) -> None:
    corrected = await chat(hz, "Capital of Australia?", "Sydney is the capital of Australia.")
    await hz.send(slash("correct", {"message_id": corrected["id"], "correction": "Canberra is the capital."}))
    # A thumb down on the corrected reply pairs the same two answers: deduplicated, not a second pair.
    await hz.send(button("hz.down", corrected))
    liked = await chat(hz, "Say hi", "Hi!")
    await hz.send(button("hz.up", liked))
    disliked = await chat(hz, "Largest ocean?", "The Atlantic.")
    await hz.send(button("hz.down", disliked))
    await chat(hz, "Unrated", "No feedback here.")

    # Nothing is reviewed yet: nothing is built, unless pending items are asked for (and labelled).
    refused = await hz.send(slash("dataset", {"name": "gold"}, subcommand="build", user=ADMIN_MEMBER))
    assert "No approved corrections or rated replies match" in said(refused)
    draft = await hz.send(
        slash("dataset", {"name": "draft", "include_pending": True}, subcommand="build", user=ADMIN_MEMBER)
    )
    assert "from 1 reviewed or pending correction" in said(draft)
    assert "no curator has reviewed yet" in said(draft)
    assert "PENDING" in ((await hz.services.datasets.resolve(GUILD_ID, "draft")).description or "")

    assert await approve_pending(hz.app) == 4  # the correction and three ratings
    built = await hz.send(slash("dataset", {"name": "gold"}, subcommand="build", user=ADMIN_MEMBER))
    assert (
        "Built `gold` version 1 from 1 approved correction (each a chat example and a preference pair) and "
        "3 approved rated replies: 5 records." in said(built)
    )
    rows = await dataset_rows(hz, "gold")
    await assert_show_counts_what_training_uses(hz, "gold")
    # The corrections dataset: a correction's chat example and pair give one supervised line, counted once.
    await assert_show_counts_what_training_uses(hz, "corrections")
    assert sorted((r.kind, r.label, r.origin) for r in rows) == [
        ("chat", "negative", "feedback"),
        ("chat", "negative", "feedback"),
        ("chat", "positive", "correction"),
        ("chat", "positive", "feedback"),
        ("preference", "positive", "correction"),
    ]

    supervised = await hz.send(
        slash("dataset", {"name": "gold", "format": "openai-chat"}, subcommand="export", user=ADMIN_MEMBER)
    )
    [file] = sent_files(supervised)
    assert file.filename == "gold-v1.openai-chat.jsonl"
    lines = parse_jsonl(file.content)
    for line in lines:
        assert_openai_chat_line(line)
    assert lines == [
        {
            "messages": [
                {"role": "user", "content": "Capital of Australia?"},
                {"role": "assistant", "content": "Canberra is the capital."},
            ]
        },
        {"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi!"}]},
    ]

    preference = await hz.send(
        slash("dataset", {"name": "gold", "format": "preference"}, subcommand="export", user=ADMIN_MEMBER)
    )
    [pairs] = sent_files(preference)
    lines = parse_jsonl(pairs.content)
    for line in lines:
        assert_openai_preference_line(line)
    assert lines == [
        {
            "input": {"messages": [{"role": "user", "content": "Capital of Australia?"}]},
            "preferred_output": [{"role": "assistant", "content": "Canberra is the capital."}],
            "non_preferred_output": [{"role": "assistant", "content": "Sydney is the capital of Australia."}],
        }
    ]
    # The same records through the function the training code calls.
    gold = await hz.services.datasets.resolve(GUILD_ID, "gold")
    assert await load_examples(hz.services.db, gold.id, "preference") == lines
    assert await load_examples(hz.services.db, "gold", "supervised", guild_id=GUILD_ID) == parse_jsonl(file.content)
    assert (await audit_actions(hz))[-3:] == ["dataset.build", "dataset.export", "dataset.export"]


@pytest.mark.asyncio
async def test_build_filters_by_channel_model_rating_and_period(hz: RunningBot) -> None:
    other_channel = 1_100_000_000_000_000_201
    here = await chat(hz, "Here?", "Yes, here.")
    await hz.send(button("hz.up", here))
    hz.openai.reply_with("There.")
    elsewhere = await hz.send(slash("chat", {"message": "There?"}, channel_id=other_channel))
    assert elsewhere.original_message is not None
    await hz.send(button("hz.up", elsewhere.original_message))
    so_so = await chat(hz, "So-so?", "Meh.")
    found = await hz.services.replies.by_message(int(so_so["id"]), guild_id=GUILD_ID)
    assert found is not None
    await hz.services.feedback.add_rating(
        author_id=ADMIN_USER_ID,
        guild_id=GUILD_ID,
        channel_id=found[0].channel_id,
        rating=3,
        comment=None,
        reply=found[0],
    )
    await approve_pending(hz.app)

    async def users_of(**filters: Any) -> list[str]:
        report = await hz.services.catalog.build(guild_id=GUILD_ID, actor_id=ADMIN_USER_ID, name="f", **filters)
        rows = await hz.services.datasets.examples(report.dataset.id)
        return sorted(r.messages[0]["content"] for r in rows)

    assert await users_of() == ["Here?", "There?"]  # a 3 decides nothing
    assert await users_of(channel_id=other_channel) == ["There?"]
    assert await users_of(min_rating=3) == ["Here?", "So-so?", "There?"]
    assert await users_of(days=1) == ["Here?", "There?"]
    with pytest.raises(InvalidInputError, match="No approved corrections or rated replies match"):
        await users_of(model="some-other-model")
    via_command = await hz.send(
        slash(
            "dataset",
            {"name": "chan", "channel": ChannelRef(other_channel), "min_rating": 4},
            subcommand="build",
            user=ADMIN_MEMBER,
        )
    )
    assert (
        "Built `chan` version 1 from 0 approved corrections (each a chat example and a preference pair) and "
        "1 approved rated reply: 1 record." in said(via_command)
    )


@pytest.mark.asyncio
async def test_build_never_takes_another_servers_conversations(hz: RunningBot) -> None:
    """Feedback (or a correction) recorded in server B on a reply the bot gave in server A does not bring A's
    conversation into B's datasets, nor into A's."""
    secret = await chat(hz, "Our launch date?", "March 3rd, internal only.")
    found = await hz.services.replies.by_message(int(secret["id"]), guild_id=GUILD_ID)
    assert found is not None
    reply = found[0]
    assert reply.guild_id == GUILD_ID
    other = 1_100_000_000_000_000_777
    async with hz.services.db.session() as session, session.begin():
        session.add(Feedback(reply_id=reply.id, guild_id=other, channel_id=reply.channel_id, author_id=5,
                             kind="rating", rating=5, model=reply.model))  # fmt: skip
        session.add(Correction(reply_id=reply.id, guild_id=other, channel_id=reply.channel_id, author_id=5,
                               context=list(reply.prompt_messages), original_text=reply.content,
                               corrected_text="March 3rd.", source="modal"))  # fmt: skip
    assert await hz.services.datasets.rated_replies(other, since=None, channel_id=None, model=None) == []
    assert await hz.services.datasets.corrections_for_build(other, since=None, channel_id=None, model=None) == []
    with pytest.raises(InvalidInputError, match="No approved corrections or rated replies match"):
        await hz.services.catalog.build(guild_id=other, actor_id=5, name="stolen")
    # In A, that feedback is B's and does not count either.
    assert await hz.services.datasets.rated_replies(GUILD_ID, since=None, channel_id=None, model=None) == []
    # A's own feedback on its own reply still does.
    await hz.send(button("hz.up", secret))
    await approve_pending(hz.app)
    [(rated, ratings)] = await hz.services.datasets.rated_replies(GUILD_ID, since=None, channel_id=None, model=None)
    assert (rated.id, ratings) == (reply.id, [("thumbs", 1)])


# ------------------------------------------------------------------------------------------------- list, show


@pytest.mark.asyncio
async def test_list_and_show(hz: RunningBot) -> None:
    empty = await hz.send(slash("dataset", subcommand="list", user=ADMIN_MEMBER))
    assert "No datasets yet" in said(empty)
    await upload(hz, "a.jsonl", jsonl([*CHAT_LINES, PREFERENCE_LINE]))
    await upload(hz, "b.txt", b"Bad?\tAnswer.\n", positive=False)

    listed = await hz.send(slash("dataset", subcommand="list", user=ADMIN_MEMBER))
    assert "• `basics` v2: 4 records (3 chat examples (2 to follow, 1 to avoid); 1 preference pair)" in said(listed)

    shown = await hz.send(slash("dataset", {"name": "basics"}, subcommand="show", user=ADMIN_MEMBER))
    assert shown.response_type == DEFERRED  # deferred before any work
    assert shown.ephemeral
    [embed] = sent_embeds(shown)
    assert embed["title"] == "basics · version 2"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    # What members made, in their words: a preference pair is neither to follow nor to avoid.
    assert fields["Contents"] == "3 chat examples (2 to follow, 1 to avoid)\n1 preference pair\nfrom 4 uploaded records"
    assert fields["Versions"] == "v1, v2"
    assert "supervised: 3" in fields["For training"]
    assert "preference pairs: 1" in fields["For training"]
    assert "gpt-4o-mini-2024-07-18: $0.00" in fields["Hosted fine-tuning estimate (supervised, 3 epochs)"]
    assert "Be brief." in fields["Sample (supervised)"]
    assert "Canberra." in fields["Sample (preference)"]
    tokens = sum(r.token_count for r in await dataset_rows(hz, "basics"))
    assert fields["Records"] == f"4 records (~{tokens:,} tokens)"
    assert fields["Review queue (this server)"] == "nothing yet"
    await assert_show_counts_what_training_uses(hz, "basics")

    names = await hz.send(autocomplete("dataset", {"name": "bas"}, "name", subcommand="show", user=ADMIN_MEMBER))
    assert [c["value"] for c in names.choices] == ["basics"]
    assert (await hz.send(autocomplete("dataset", {"name": ""}, "name", subcommand="show", user=MEMBER))).choices == []

    unknown = await hz.send(slash("dataset", {"name": "nope"}, subcommand="show", user=ADMIN_MEMBER))
    assert unknown.ephemeral
    assert said(unknown) == "No dataset called `nope` here. See `/dataset list`."
    no_version = await hz.send(slash("dataset", {"name": "basics@9"}, subcommand="show", user=ADMIN_MEMBER))
    assert "has no version 9" in said(no_version)

    refused = await hz.send(slash("dataset", subcommand="list", user=MEMBER))
    assert "`curate` capability" in said(refused)
    await hz.services.guild_settings.update(GUILD_ID, capability_roles={"curate": [CURATOR_ROLE]})
    curator = member_payload(user_payload(1_100_000_000_000_000_998, "carol"), roles=[CURATOR_ROLE])
    allowed = await hz.send(slash("dataset", subcommand="list", user=curator))
    assert "`basics` v2" in said(allowed)


# ------------------------------------------------------------------------------------------------- export


@pytest.mark.asyncio
async def test_export_split_and_zip_over_the_upload_limit(strict_hz: RunningBot) -> None:
    hz = strict_hz
    records = [{"prompt": f"q{i}", "completion": f"answer number {i}"} for i in range(40)]
    await hz.services.catalog.import_file(
        _write(hz.settings.data_dir / "seed.jsonl", jsonl(records)),
        filename="seed.jsonl",
        guild_id=GUILD_ID,
        actor_id=ADMIN_USER_ID,
        name="big",
        positive=True,
    )
    result = await hz.send(
        slash("dataset", {"name": "big", "validation": 0.25}, subcommand="export", user=ADMIN_MEMBER)
    )
    text = said(result)
    assert "30 records for training and 10 for validation (zipped to fit Discord's upload limit)" in text
    [file] = sent_files(result)
    assert file.filename == "big-v1.openai-chat.zip"
    with zipfile.ZipFile(io.BytesIO(file.content)) as zf:
        assert sorted(zf.namelist()) == ["big-v1.openai-chat.train.jsonl", "big-v1.openai-chat.validation.jsonl"]
        train = parse_jsonl(zf.read("big-v1.openai-chat.train.jsonl"))
        held = parse_jsonl(zf.read("big-v1.openai-chat.validation.jsonl"))
    assert len(train) == 30
    assert len(held) == 10
    for line in train + held:
        assert_openai_chat_line(line)
    assert sorted(line["messages"][0]["content"] for line in train + held) == sorted(f"q{i}" for i in range(40))
    # The files stay in the data directory.
    assert (area_of(hz) / "exports" / "big-v1.openai-chat.train.jsonl").is_file()


@pytest.mark.asyncio
async def test_export_too_large_even_zipped_is_kept_on_disk(strict_hz: RunningBot) -> None:
    hz = strict_hz
    records = [{"prompt": f"q{i} " + "x" * 10, "completion": f"{i * 7919:x} {i * 104729:x}"} for i in range(300)]
    await hz.services.catalog.import_file(
        _write(hz.settings.data_dir / "seed.jsonl", jsonl(records)),
        filename="seed.jsonl", guild_id=GUILD_ID, actor_id=ADMIN_USER_ID, name="huge", positive=True,
    )  # fmt: skip
    result = await hz.send(slash("dataset", {"name": "huge"}, subcommand="export", user=ADMIN_MEMBER))
    assert "Too large to attach even zipped (limit 1,000 bytes)" in said(result)
    assert "saved in this server's files as `exports/huge-v1.openai-chat.jsonl`" in said(result)
    assert sent_files(result) == []


@pytest.mark.asyncio
async def test_csv_export_reads_back_as_the_same_examples(hz: RunningBot) -> None:
    multi_turn = {
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": 'Bye, "friend",\nsee you'},
            {"role": "assistant", "content": "Bye!"},
        ]
    }
    await upload(hz, "a.jsonl", jsonl([multi_turn, PREFERENCE_LINE]))
    await upload(hz, "b.jsonl", jsonl([{"prompt": "Bad", "completion": "Worse"}]), positive=False)
    exported = await hz.send(
        slash("dataset", {"name": "basics", "format": "csv"}, subcommand="export", user=ADMIN_MEMBER)
    )
    [file] = sent_files(exported)
    assert file.filename == "basics-v2.csv"
    rows = list(csv.DictReader(io.StringIO(file.content.decode("utf-8"))))
    assert [(r["prompt"], r["completion"], r["label"]) for r in rows] == [
        ('Bye, "friend",\nsee you', "Bye!", "positive"),
        ("Capital of Australia?", "Canberra.", "positive"),
        ("Capital of Australia?", "Sydney.", "negative"),
        ("Bad", "Worse", "negative"),
    ]
    back = await upload(hz, "basics.csv", file.content, name="again")
    assert "Imported 4 examples" in said(back)
    original = await dataset_rows(hz, "basics")
    again = await dataset_rows(hz, "again")
    assert next((r.messages, r.label) for r in again if r.kind == "chat") == (multi_turn["messages"], "positive")
    assert await load_examples(hz.services.db, "again", "preference", guild_id=GUILD_ID) == await load_examples(
        hz.services.db, "basics", "preference", guild_id=GUILD_ID
    )
    assert len(original) == 3


# ------------------------------------------------------------------------------------------------- archive


@pytest.mark.asyncio
async def test_dataset_archive_writes_a_verified_zip_and_retires_the_dataset(hz: RunningBot) -> None:
    await upload(hz, "a.jsonl", jsonl([*CHAT_LINES, PREFERENCE_LINE]))
    await upload(hz, "b.jsonl", jsonl([{"prompt": "More", "completion": "Yes"}]))
    await hz.send(slash("dataset", {"name": "basics"}, subcommand="export", user=ADMIN_MEMBER))
    exported = area_of(hz) / "exports" / "basics-v2.openai-chat.jsonl"
    assert exported.is_file()

    result = await hz.send(
        slash("dataset", {"name": "basics", "attach": True}, subcommand="archive", user=ADMIN_MEMBER)
    )
    assert "Archived `basics` as `archive/dataset-basics-" in said(result)
    [attached] = sent_files(result)
    [archive] = list((area_of(hz) / "archive").glob("*.zip"))
    assert attached.content == archive.read_bytes()
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        names = sorted(f["path"] for f in manifest["files"])
        assert names == [
            "exports/basics-v2.openai-chat.jsonl",
            "v1/basics.csv",
            "v1/basics.openai-chat.jsonl",
            "v1/basics.preference.jsonl",
            "v2/basics.csv",
            "v2/basics.openai-chat.jsonl",
            "v2/basics.preference.jsonl",
        ]
        import hashlib

        for entry in manifest["files"]:
            data = zf.read(entry["path"])
            assert len(data) == entry["size"]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(parse_jsonl(zf.read("v2/basics.openai-chat.jsonl"))) == 4
    assert not exported.exists()
    assert all(d.archived_at is not None for d in await all_datasets(hz))
    listed = await hz.send(slash("dataset", subcommand="list", user=ADMIN_MEMBER))
    assert "No datasets yet" in said(listed)
    gone = await hz.send(slash("dataset", {"name": "basics"}, subcommand="show", user=ADMIN_MEMBER))
    assert "Dataset `basics` is archived; `basics@2` still names it." in said(gone)
    with pytest.raises(NotFoundError):
        await load_examples(hz.services.db, "basics", "supervised", guild_id=GUILD_ID)
    assert len(await load_examples(hz.services.db, "basics@2", "supervised", guild_id=GUILD_ID)) == 4
    assert (await audit_actions(hz))[-1] == "dataset.archive"
    assert not any((area_of(hz) / "tmp").iterdir())

    corrections = await hz.send(slash("dataset", {"name": "corrections"}, subcommand="archive", user=ADMIN_MEMBER))
    assert "cannot be archived" in said(corrections)


# ------------------------------------------------------------------------------------------------- training API


def test_split_examples_is_reproducible_and_keeps_both_sides() -> None:
    items = list(range(10))
    train, held = split_examples(items, 0.2)
    assert (train, held) == split_examples(items, 0.2)
    assert len(held) == 2
    assert sorted(train + held) == items
    assert split_examples(items, 0.0) == (items, [])
    assert split_examples([1, 2], 0.01) == ([1], [2]) or split_examples([1, 2], 0.01) == ([2], [1])
    assert split_examples([1], 0.5) == ([1], [])
    with pytest.raises(InvalidInputError):
        split_examples(items, 1.0)


@pytest.mark.asyncio
async def test_load_examples_pairs_positive_and_negative_answers(hz: RunningBot) -> None:
    question = [{"role": "user", "content": "Best language?"}]
    await upload(hz, "good.jsonl", jsonl([{"messages": [*question, {"role": "assistant", "content": "Python."}]}]))
    await upload(
        hz,
        "bad.jsonl",
        jsonl([{"messages": [*question, {"role": "assistant", "content": "COBOL."}]}, PREFERENCE_LINE]),
        positive=False,
    )
    supervised = await load_examples(hz.services.db, "basics", "supervised", guild_id=GUILD_ID)
    # The negative pair reads the other way round: Sydney preferred over Canberra.
    assert supervised == [
        {"messages": [*question, {"role": "assistant", "content": "Python."}]},
        {
            "messages": [
                {"role": "user", "content": "Capital of Australia?"},
                {"role": "assistant", "content": "Sydney."},
            ]
        },
    ]
    preference = await load_examples(hz.services.db, "basics", "preference", guild_id=GUILD_ID)
    assert [(p["preferred_output"][0]["content"], p["non_preferred_output"][0]["content"]) for p in preference] == [
        ("Sydney.", "Canberra."),
        ("Python.", "COBOL."),
    ]
    await assert_show_counts_what_training_uses(hz, "basics")
    with pytest.raises(NotFoundError, match="No dataset called `missing`"):
        await load_examples(hz.services.db, "missing", "supervised", guild_id=GUILD_ID)
    with pytest.raises(NotFoundError, match="id 999"):
        await load_examples(hz.services.db, 999, "supervised")


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path
