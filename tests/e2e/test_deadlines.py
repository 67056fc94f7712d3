"""Discord's deadlines: 3 seconds for the first answer (a slow handler is deferred for it, and the answer follows),
15 minutes for the token (longer work answers in a DM). The harness fails any test whose answer Discord would
have refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import pytest

from hypotez.plugins import _deadlines
from hypotez.storage.repositories import GuildSettingsRepository, ReplyRepository
from tests.fakes.interactions import ADMIN_MEMBER, ADMIN_USER_ID, CHANNEL_ID, autocomplete, button, slash

if TYPE_CHECKING:
    from tests.conftest import RunningBot


CASE = json.dumps({"text": "Capital of France?", "expected": "Paris"})


def _slow_settings(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Every settings read (each interaction's caller needs one) takes ``seconds``: a database under load."""
    original = GuildSettingsRepository.effective

    async def slow(self: GuildSettingsRepository, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(seconds)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(GuildSettingsRepository, "effective", slow)


@pytest.mark.asyncio
async def test_a_slow_command_is_deferred_in_time_and_answers_after(
    hz: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_settings(monkeypatch, 2.6)
    result = await hz.send(slash("about"))
    assert result.response_type == 5  # deferred for it, ephemerally, before Discord's 3 s
    assert result.ephemeral
    original = result.original_message
    assert original is not None
    assert original["embeds"][0]["title"].startswith("hypotez")


@pytest.mark.asyncio
async def test_a_slow_button_is_deferred_in_time_and_answers_after(
    hz: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    hz.openai.reply_with("Four.")
    reply = (await hz.send(slash("chat", {"message": "2 + 2?"}))).original_message
    assert reply is not None
    _slow_settings(monkeypatch, 2.6)
    pressed = await hz.send(button("hz.up", reply))
    assert pressed.response_type == 5
    followups = await pressed.wait_for_followups()
    assert any("👍" in str((call.json or {}).get("content")) for call in followups)


def _sixteen_minutes_pass_while_answering(hz: RunningBot, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model takes 16 minutes for the first answer (the bot's clock and Discord's both move on)."""
    shift = {"seconds": 0.0}
    real = _deadlines.utcnow
    monkeypatch.setattr(_deadlines, "utcnow", lambda: real() + dt.timedelta(seconds=shift["seconds"]))

    def slow_model(messages: list[dict[str, str]], model: str) -> str:
        if not shift["seconds"]:
            shift["seconds"] = 16 * 60
            hz.rest.advance(16 * 60)
        return "Paris"

    hz.openai.reply_with(slow_model)


@pytest.mark.asyncio
async def test_long_work_answers_in_a_dm_once_the_token_expired(
    hz: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sixteen_minutes_pass_while_answering(hz, monkeypatch)
    result = await hz.send(slash("test", {"data": CASE}, subcommand="run", user=ADMIN_MEMBER))
    assert result.response_type == 5
    assert not result.followups  # nothing sent with the expired token (the harness would fail the test)
    dm = hz.rest.dm_channels[ADMIN_USER_ID]
    [posted] = hz.rest.calls_to("POST", f"/channels/{dm}/messages")
    assert posted.json is not None
    assert "took longer than Discord keeps a command open" in posted.json["content"]
    assert "exact match 100%" in posted.json["content"]
    assert [f.filename.startswith("test-") for f in posted.files] == [True]


@pytest.mark.asyncio
async def test_with_dms_closed_the_late_answer_mentions_the_member_in_the_channel(
    hz: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sixteen_minutes_pass_while_answering(hz, monkeypatch)
    hz.rest.closed_dms.add(ADMIN_USER_ID)
    await hz.send(slash("test", {"data": CASE}, subcommand="run", user=ADMIN_MEMBER))
    [posted] = [c for c in hz.rest.calls_to("POST", f"/channels/{CHANNEL_ID}/messages") if c.files]
    assert posted.json is not None
    assert posted.json["content"].startswith(f"<@{ADMIN_USER_ID}> Your `/test run` took longer")
    assert posted.json["allowed_mentions"]["users"] == [str(ADMIN_USER_ID)]


@pytest.mark.asyncio
async def test_a_slow_autocomplete_answers_in_time_with_no_choices(
    hz: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    hz.openai.reply_with("Four.")
    await hz.send(slash("chat", {"message": "2 + 2?"}))
    offered = await hz.send(autocomplete("correct", {"message_id": ""}, "message_id"))
    assert len(offered.choices) == 1  # the member's recent reply
    original = ReplyRepository.recent_for_author

    async def slow(self: ReplyRepository, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(2.6)  # the database is under load
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(ReplyRepository, "recent_for_author", slow)
    late = await hz.send(autocomplete("correct", {"message_id": ""}, "message_id"))
    assert late.choices == []  # in time, with nothing rather than too late with something

    _slow_settings(monkeypatch, 2.6)  # resolving who asks (the caller's grants) is slow too: bounded as well
    trainer = await hz.send(autocomplete("train", {"dataset": ""}, "dataset", user=ADMIN_MEMBER))
    assert trainer.choices == []
