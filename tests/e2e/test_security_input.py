"""Inputs a member can type or upload that used to end in "Something went wrong" (or in silence): each gets a
specific answer."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest

from hypotez.config import Capability, GuildPermissions
from hypotez.errors import InvalidInputError
from hypotez.plugins._attachments import read_text_attachment
from hypotez.plugins._errors import handle_command_error
from tests.conftest import running_hypotez
from tests.fakes.interactions import ADMIN_MEMBER, GUILD_ID, Attachment, RoleRef, said, slash

if TYPE_CHECKING:
    import contextlib
    from collections.abc import AsyncIterator

    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.openai_api import FakeOpenAI

GENERIC = "Something went wrong"
TRAINERS = 1_100_000_000_000_000_777


@pytest.mark.asyncio
async def test_message_ids_beyond_64_bits_are_refused(hz: RunningBot) -> None:
    result = await hz.send(slash("correct", {"message_id": "9" * 21, "correction": "x"}))
    text = said(result)
    assert "too large to be a Discord message id" in text
    assert GENERIC not in text


@pytest.mark.asyncio
async def test_dataset_versions_in_unicode_digits_or_too_long(hz: RunningBot) -> None:
    for ref, expected in (("basics@²", "digits 0-9 only"), ("basics@" + "9" * 30, "has no version")):
        result = await hz.send(slash("dataset", {"name": ref}, subcommand="show", user=ADMIN_MEMBER))
        text = said(result)
        assert expected in text, ref
        assert GENERIC not in text


async def _upload(hz: RunningBot, filename: str, content: bytes) -> str:
    attachment = hz.rest.host(Attachment(filename, content, content_type="text/plain"))
    options: dict[str, Any] = {"file": attachment, "name": "basics"}
    return said(
        await hz.send(slash("dataset", options, subcommand="upload", user=ADMIN_MEMBER, attachments=[attachment]))
    )


@pytest.mark.asyncio
async def test_uploads_with_huge_integers(hz: RunningBot) -> None:
    huge = "1" * 5000
    jsonl = json.dumps({"prompt": "a", "completion": "b"}) + "\n" + '{"prompt": "c", "completion": ' + huge + "}\n"
    text = await _upload(hz, "huge.jsonl", jsonl.encode())
    assert "too many digits" in text
    assert GENERIC not in text
    csv = f'prompt,completion,context\na,b,"[{huge}]"\n'
    text = await _upload(hz, "huge.csv", csv.encode())
    assert "too many digits" in text
    assert GENERIC not in text


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"text": "a", "n": ' + "1" * 5000 + "}", "too many digits"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"text": "\\ud800"}', "unpaired"),
    ],
    ids=["huge-int", "deep", "surrogate"],
)
async def test_test_data_that_json_cannot_hold(hz: RunningBot, data: str, expected: str) -> None:
    result = await hz.send(slash("test", {"data": data, "model": "gpt-4.1-mini"}, subcommand="run", user=ADMIN_MEMBER))
    text = said(result)
    assert expected in text
    assert GENERIC not in text


@pytest.mark.asyncio
async def test_nul_characters_are_refused_clearly(hz: RunningBot) -> None:
    result = await hz.send(slash("chat", {"message": "hello\x00there"}))
    text = said(result)
    assert "NUL character" in text
    assert GENERIC not in text


class _Context:
    class command_data:
        qualified_name = "test run"

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def respond(self, content: str, *, ephemeral: bool) -> None:
        assert ephemeral
        if len(content) > 2000:
            raise AssertionError("Discord refuses messages over 2,000 characters")
        self.sent.append(content)


class _LongRefusal(InvalidInputError):
    def __init__(self) -> None:
        super().__init__("The test data has problems: " + "x" * 5000)
        self.context = _Context()


@pytest.mark.asyncio
async def test_a_refusal_longer_than_discord_allows_is_cut() -> None:
    refusal = _LongRefusal()
    await handle_command_error(refusal)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    [sent] = refusal.context.sent
    assert sent.startswith("The test data has problems: xxx")
    assert sent.endswith("…")
    assert len(sent) == 2000


class _Stream:
    """A download that never ends (announced as 10 bytes); records how much was read and whether it was closed."""

    def __init__(self) -> None:
        self.read = 0
        self.closed = False

    async def __aenter__(self) -> _Stream:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.closed = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.read += 1024
            yield b"x" * 1024


class _LyingAttachment:
    filename = "big.txt"
    size = 10

    def __init__(self) -> None:
        self.download = _Stream()

    def stream(self) -> contextlib.AbstractAsyncContextManager[_Stream]:
        return self.download

    async def read(self) -> bytes:
        raise AssertionError("the whole body was read before its size was checked")


@pytest.mark.asyncio
async def test_text_attachments_are_streamed_with_a_running_limit() -> None:
    attachment = _LyingAttachment()
    with pytest.raises(InvalidInputError, match="larger than"):
        await read_text_attachment(attachment, 4096)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    assert attachment.download.closed
    assert attachment.download.read <= 4096 + 1024


@pytest.mark.asyncio
async def test_admin_for_everyone_is_refused(hz: RunningBot) -> None:
    result = await hz.send(
        slash("admin", {"capability": "admin", "role": RoleRef(GUILD_ID)}, subcommand="grant", user=ADMIN_MEMBER)
    )
    assert "@everyone" in said(result)
    assert (await hz.services.guild_settings.effective(GUILD_ID, 0)).capability_roles == {}


@pytest.mark.asyncio
async def test_revoking_a_settings_file_grant_says_where_it_lives(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    settings = bot_settings.model_copy(
        update={"permissions": {GUILD_ID: GuildPermissions(roles={Capability.TRAIN: [TRAINERS]})}}
    )
    async with running_hypotez(settings, openai_fake) as hz:
        result = await hz.send(
            slash("admin", {"capability": "train", "role": RoleRef(TRAINERS)}, subcommand="revoke", user=ADMIN_MEMBER)
        )
        text = said(result)
        assert "settings file" in text
        assert "keeps it" in text


@pytest.mark.asyncio
async def test_getfile_refuses_hard_links(hz: RunningBot) -> None:
    root = hz.settings.data_dir / "guilds" / str(GUILD_ID)
    (root / "exports").mkdir(parents=True, exist_ok=True)
    outside = hz.settings.data_dir / "secret.txt"
    outside.write_text("not yours")
    os.link(outside, root / "exports" / "linked.txt")
    result = await hz.send(slash("getfile", {"path": "exports/linked.txt"}, user=ADMIN_MEMBER))
    text = said(result)
    assert "hard links" in text
