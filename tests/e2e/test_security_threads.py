"""A private ``/chat`` turn is no one else's context, a thread continues only its own server's public
conversation, and a server sees only its own trained models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from hypotez.keys import Key, build_key
from hypotez.storage.models import BotReply, RegisteredModel
from hypotez.storage.repositories import ReplyRepository
from tests.conftest import message_to_bot
from tests.fakes.interactions import (
    CHANNEL_ID,
    GUILD_ID,
    USER_ID,
    autocomplete,
    button,
    in_other_guild,
    member_payload,
    message_payload,
    next_snowflake,
    slash,
    user_payload,
)

if TYPE_CHECKING:
    import hikari

    from tests.conftest import RunningBot

OTHER_GUILD = 1_100_000_000_000_009_999
BOB_ID = 1_100_000_000_000_000_377
BOB_USER = user_payload(BOB_ID, "bob")
BOB = member_payload(BOB_USER)
SECRET = "My password is hunter2."


async def _replies(hz: RunningBot) -> list[BotReply]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(BotReply).order_by(BotReply.id))).all())


def _echo_history(messages: list[dict[str, Any]], model: str) -> str:
    """A model that says how many user turns it was sent."""
    return f"turn {sum(1 for m in messages if m['role'] == 'user')}"


def _in_thread(payload: dict[str, Any], thread_id: int) -> dict[str, Any]:
    payload["channel_id"] = str(thread_id)
    payload["channel"]["id"] = str(thread_id)
    payload["channel"]["type"] = 11
    payload["channel"]["parent_id"] = str(CHANNEL_ID)
    return payload


def _chat_in_thread(thread_id: int, message: str, **options: Any) -> dict[str, Any]:
    user = options.pop("user", None)
    return _in_thread(slash("chat", {"message": message, **options}, user=user, channel_id=thread_id), thread_id)


def _sent_text(reply: BotReply) -> str:
    return " ".join(str(m["content"]) for m in reply.prompt_messages)


@pytest.mark.asyncio
async def test_a_private_turn_in_a_thread_is_not_the_next_members_context(hz: RunningBot) -> None:
    hz.openai.reply_with(_echo_history)
    thread = next_snowflake()
    await hz.send(_chat_in_thread(thread, SECRET, private=True))
    await hz.send(_chat_in_thread(thread, "What did the last person say?", user=BOB))
    secret, bobs = await _replies(hz)
    assert bobs.author_id == BOB_ID
    assert bobs.parent_id is None
    assert "hunter2" not in _sent_text(bobs)
    assert secret.private
    assert not bobs.private

    # Alice's own private turn continues her private conversation.
    await hz.send(_chat_in_thread(thread, "And mine?", private=True))
    again = (await _replies(hz))[-1]
    assert again.parent_id == bobs.id  # the thread's newest turn she may see...
    await hz.send(_chat_in_thread(thread, "Once more", private=True))
    assert (await _replies(hz))[-1].parent_id == again.id  # ...and then her own private one

    # A public turn never continues a private one, not even its author's.
    await hz.send(_chat_in_thread(thread, "Now in public"))
    public = (await _replies(hz))[-1]
    assert public.parent_id == bobs.id
    assert "hunter2" not in _sent_text(public)


@pytest.mark.asyncio
async def test_a_thread_on_a_private_reply_or_of_another_server_starts_fresh(hz: RunningBot) -> None:
    hz.openai.reply_with(_echo_history)
    result = await hz.send(slash("chat", {"message": SECRET, "private": True}))
    assert result.original_message is not None
    private_message = int(result.original_message["id"])
    # A thread named after the private reply's message (no thread can be opened on it) continues nothing.
    await hz.send(_chat_in_thread(private_message, "What was said here?", user=BOB))
    bobs = (await _replies(hz))[-1]
    assert bobs.parent_id is None
    assert "hunter2" not in _sent_text(bobs)

    # A public thread of this server, continued with its id from another server.
    thread = next_snowflake()
    await hz.send(_chat_in_thread(thread, "Our plan is X."))
    own = (await _replies(hz))[-1]
    await hz.send(in_other_guild(_chat_in_thread(thread, "What is the plan?", user=BOB), OTHER_GUILD))
    elsewhere = (await _replies(hz))[-1]
    assert elsewhere.guild_id == OTHER_GUILD
    assert elsewhere.parent_id is None
    assert "plan is X" not in _sent_text(elsewhere)
    # In its own server the thread continues.
    await hz.send(_chat_in_thread(thread, "And then?", user=BOB))
    assert (await _replies(hz))[-1].parent_id == own.id


async def _continue(hz: RunningBot, message: hikari.Message) -> BotReply | None:
    """What the gateway listener does with ``message`` (HTTP mode receives no messages)."""
    return await message_to_bot(hz, message)


@pytest.mark.asyncio
async def test_a_private_reply_is_never_continued_or_found_by_someone_else(hz: RunningBot) -> None:
    hz.openai.reply_with(_echo_history)
    result = await hz.send(slash("chat", {"message": SECRET, "private": True}))
    reply_message = result.original_message
    assert reply_message is not None
    message_id = int(reply_message["id"])
    replies = hz.app.get(ReplyRepository)
    assert await replies.by_message(message_id, guild_id=GUILD_ID, user_id=BOB_ID) is None
    assert await replies.by_message(message_id, guild_id=GUILD_ID) is None
    assert await replies.by_message(message_id, guild_id=GUILD_ID, user_id=USER_ID) is not None

    for author in (BOB_USER, None):  # someone else; not even its author continues it in public
        payload = message_payload(
            "Tell me more", author_bot=False, message_id=next_snowflake(), referenced_message=reply_message
        )
        if author is not None:
            payload["author"] = dict(author)
        message = hz.app.bot.entity_factory.deserialize_message(payload)
        assert await _continue(hz, message) is None
    assert len(await _replies(hz)) == 1

    # Nor corrected by another member who learnt its id.
    corrected = await hz.send(slash("correct", {"message_id": str(message_id), "correction": "x"}, user=BOB))
    assert corrected.content is not None
    assert "not one of my replies" in corrected.content
    # Nor opened through a forged "Correct it" id naming it.
    [stored] = await _replies(hz)
    forged = await hz.send(button(build_key(Key.CORRECT, stored.id), reply_message, user=BOB))
    assert forged.modal is None
    assert forged.content is not None
    assert "no longer exists here" in forged.content
    own = await hz.send(button(build_key(Key.CORRECT, stored.id), reply_message))
    assert own.modal is not None  # its author still can


def _texts(result: Any) -> str:
    parts = [str(result.content or ""), str(result.original_message or "")]
    parts += [str(call.json) for call in result.followups]
    return " ".join(parts)


@pytest.mark.asyncio
async def test_model_list_and_autocomplete_show_only_this_servers_trained_models(hz: RunningBot) -> None:
    async with hz.services.db.session() as session, session.begin():
        session.add(RegisteredModel(guild_id=GUILD_ID, name="local:job-ours", backend="local", origin="fine-tune"))
        session.add(RegisteredModel(guild_id=OTHER_GUILD, name="local:job-theirs", backend="local", origin="fine-tune"))
        # A job trained outside servers registered itself under guild 0, which used to mean "every server".
        session.add(RegisteredModel(guild_id=0, name="local:job-dm", backend="local", origin="fine-tune"))
    hz.openai.models.append("ft:gpt-4o-mini:org:theirs:1")  # one organisation serves every server's fine-tunes

    ours = _texts(await hz.send(slash("model", subcommand="list")))
    assert "local:job-ours" in ours
    assert "gpt-4o-mini" in ours
    for name in ("local:job-theirs", "local:job-dm", "ft:gpt-4o-mini:org:theirs:1"):
        assert name not in ours

    in_dm = _texts(await hz.send(slash("model", subcommand="list", guild=False)))
    assert "gpt-4o-mini" in in_dm
    for name in ("local:job-ours", "local:job-theirs", "local:job-dm", "ft:gpt-4o-mini:org:theirs:1"):
        assert name not in in_dm

    offered = await hz.send(autocomplete("chat", {"message": "hi", "model": ""}, "model"))
    values = [c["value"] for c in offered.choices]
    assert "local:job-ours" in values
    assert not {"local:job-theirs", "local:job-dm"} & set(values)
    offered_dm = await hz.send(autocomplete("chat", {"message": "hi", "model": ""}, "model", guild=False))
    values_dm = [c["value"] for c in offered_dm.choices]
    assert "gpt-4o-mini" in values_dm
    assert not {"local:job-ours", "local:job-theirs", "local:job-dm"} & set(values_dm)
