from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import hypotez
from tests.fakes.interactions import slash

if TYPE_CHECKING:
    from tests.conftest import RunningBot


@pytest.mark.asyncio
async def test_about_end_to_end(hz: RunningBot) -> None:
    result = await hz.send(slash("about"))
    assert result.status == 204  # lightbulb answers over REST, before the 204
    assert result.ephemeral
    embed = result.embeds[0]
    assert embed["title"] == f"hypotez {hypotez.__version__}"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Chat model"] == "`gpt-4o-mini`"
    assert fields["Storage"] in {"sqlite", "postgresql"}
    assert fields["Storage"] == hz.services.db.dialect
    # The test model is a local directory: only its name is shown, never the server's path.
    assert fields["Whisper model"].strip("`") == hz.settings.whisper_model.rstrip("/").rsplit("/", 1)[-1]
    assert "/" not in fields["Whisper model"]
    assert fields["Voice transport"] == "none (no voice channels)"


@pytest.mark.asyncio
async def test_about_shows_the_guild_model(hz: RunningBot) -> None:
    from tests.fakes.interactions import CHANNEL_ID, GUILD_ID

    await hz.services.guild_settings.update(GUILD_ID, CHANNEL_ID, active_model="ft:gpt-4o-mini:acme:x:1")
    result = await hz.send(slash("about"))
    fields = {f["name"]: f["value"] for f in result.embeds[0]["fields"]}
    assert fields["Chat model"] == "`ft:gpt-4o-mini:acme:x:1`"
