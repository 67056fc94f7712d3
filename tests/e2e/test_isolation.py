"""One bot serves many servers: nothing of one server is reachable from another, or from direct messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from hypotez.storage.models import Correction, Feedback, RegisteredModel
from tests.fakes.interactions import ADMIN_MEMBER, CHANNEL_ID, GUILD_ID, autocomplete, button, slash

if TYPE_CHECKING:
    from tests.conftest import RunningBot

OTHER_GUILD = 1_100_000_000_000_009_999


def elsewhere(payload: dict[str, Any]) -> dict[str, Any]:
    """The same interaction, sent from another server (where the member is an administrator)."""
    payload["guild_id"] = str(OTHER_GUILD)
    payload["channel"]["guild_id"] = str(OTHER_GUILD)
    return payload


async def _reply_in_guild_a(hz: RunningBot) -> dict[str, Any]:
    hz.openai.reply_with("Our secret plan is X.")
    result = await hz.send(slash("chat", {"message": "What is our plan?"}))
    assert result.original_message is not None
    return result.original_message


async def _count(hz: RunningBot, model: type[Correction] | type[Feedback]) -> int:
    async with hz.services.db.session() as session:
        return len((await session.scalars(select(model))).all())


@pytest.mark.asyncio
async def test_another_servers_reply_cannot_be_corrected_or_rated(hz: RunningBot) -> None:
    reply = await _reply_in_guild_a(hz)
    link = f"https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{reply['id']}"
    for target in (reply["id"], link):
        from_b = await hz.send(
            elsewhere(slash("correct", {"message_id": target, "correction": "poisoned"}, user=ADMIN_MEMBER))
        )
        assert from_b.content is not None
        assert "not one of my replies" in from_b.content
        from_dm = await hz.send(slash("correct", {"message_id": target, "correction": "poisoned"}, guild=False))
        assert from_dm.content is not None
        assert "not one of my replies" in from_dm.content
    feedback = await hz.send(
        elsewhere(slash("feedback", {"message_id": reply["id"]}, subcommand="send", user=ADMIN_MEMBER))
    )
    assert feedback.modal is None
    assert feedback.content is not None
    assert "not one of my replies" in feedback.content
    thumbs = await hz.send(elsewhere(button("hz.up", reply, user=ADMIN_MEMBER)))
    assert thumbs.content is not None
    assert "not one of my replies" in thumbs.content
    assert await _count(hz, Correction) == 0
    assert await _count(hz, Feedback) == 0
    # In its own server it works.
    own = await hz.send(slash("correct", {"message_id": reply["id"], "correction": "Our plan is Y."}))
    assert own.content is not None
    assert "Correction saved" in own.content


@pytest.mark.asyncio
async def test_another_servers_trained_model_is_neither_offered_nor_usable(hz: RunningBot) -> None:
    async with hz.services.db.session() as session, session.begin():
        session.add(RegisteredModel(guild_id=GUILD_ID, name="local:job-7", backend="local", origin="fine-tune"))
        session.add(
            RegisteredModel(guild_id=GUILD_ID, name="ft:gpt-4o-mini:org:a:1", backend="openai", origin="fine-tune")
        )
    hz.openai.models.append("ft:gpt-4o-mini:org:a:1")  # the same OpenAI organisation serves both servers

    offered_b = await hz.send(
        elsewhere(autocomplete("chat", {"message": "hi", "model": ""}, "model", user=ADMIN_MEMBER))
    )
    values_b = [c["value"] for c in offered_b.choices]
    assert "local:job-7" not in values_b
    assert "ft:gpt-4o-mini:org:a:1" not in values_b
    offered_a = await hz.send(autocomplete("chat", {"message": "hi", "model": ""}, "model"))
    assert {"local:job-7", "ft:gpt-4o-mini:org:a:1"} <= {c["value"] for c in offered_a.choices}

    for model in ("local:job-7", "ft:gpt-4o-mini:org:a:1"):
        chat = await hz.send(elsewhere(slash("chat", {"message": "hi", "model": model}, user=ADMIN_MEMBER)))
        texts = " ".join(str((c.json or {}).get("content")) for c in chat.followups)
        assert "is not a model this server can use" in texts
        use = await hz.send(elsewhere(slash("model", {"name": model}, subcommand="use", user=ADMIN_MEMBER)))
        assert any("not a model this bot can use" in str(c.json) for c in use.followups)
        test = await hz.send(
            elsewhere(slash("test", {"data": '{"text": "hi"}', "model": model}, subcommand="run", user=ADMIN_MEMBER))
        )
        assert any("is not a model this server can use" in str(c.json) for c in test.followups)


@pytest.mark.asyncio
async def test_local_training_never_starts_from_a_path(hz: RunningBot) -> None:
    for base in ("/etc", "../data/training/job-1/model", "~/models/x", "local:job-99"):
        refused = await hz.send(
            slash("train", {"dataset": "corrections", "trainer": "local", "base_model": base}, user=ADMIN_MEMBER)
        )
        assert refused.content is not None
        assert "not" in refused.content
        assert "model" in refused.content
