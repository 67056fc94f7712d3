"""Discord's 3-second deadline holds even when a handler is slow to start: it is deferred for it, and the answer
follows (the harness fails any test whose answer Discord would have refused)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from hypotez.storage.repositories import GuildSettingsRepository
from tests.fakes.interactions import button, slash

if TYPE_CHECKING:
    from tests.conftest import RunningBot


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
