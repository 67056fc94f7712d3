"""🔁 under a reply: a second answer to the same question from the same model; the member who asked picks the
better one, and the pick goes through the review queue as a preference of the better answer over the worse."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from hypotez.storage.models import BotReply, Correction, DatasetExample, ReviewItem
from tests.conftest import approve_pending
from tests.fakes.interactions import button, member_payload, said, slash, user_payload

if TYPE_CHECKING:
    from tests.conftest import RunningBot

BOB = member_payload(user_payload(1_100_000_000_000_000_453, "bob"))


async def _rows(hz: RunningBot, model: type[Any]) -> list[Any]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(model).order_by(model.id))).all())


def _pick_ids(result: Any) -> list[str]:
    """The custom ids of the pick buttons the press answered with (in its follow-ups)."""
    ids: list[str] = []
    for call in result.followups:
        for row in (call.json or {}).get("components") or []:
            ids += [c["custom_id"] for c in row["components"] if c["custom_id"].startswith("hz.rgp:")]
    return ids


async def _ask_twice(hz: RunningBot) -> tuple[BotReply, BotReply, list[str]]:
    answers = itertools.cycle(["Canberra is the capital.", "The capital of Australia is Canberra."])
    hz.openai.reply_with(lambda messages, model: next(answers))
    asked = await hz.send(slash("chat", {"message": "Capital of Australia?"}))
    assert asked.original_message is not None
    again = await hz.send(button("hz.rg", asked.original_message))
    first, second = (await _rows(hz, BotReply))[-2:]
    return first, second, _pick_ids(again)


@pytest.mark.asyncio
async def test_a_second_answer_and_the_members_pick_become_a_preference_after_review(hz: RunningBot) -> None:
    first, second, picks = await _ask_twice(hz)
    assert second.user_text == first.user_text
    assert second.parent_id == first.parent_id
    assert second.model == first.model
    assert second.content == "The capital of Australia is Canberra."
    asked = [r.json for r in hz.openai.requests if r.path.endswith("/chat/completions")]
    assert asked[0]["messages"] == asked[1]["messages"]  # the same conversation was sent again
    assert picks == [f"hz.rgp:{first.id}:{second.id}:1", f"hz.rgp:{first.id}:{second.id}:2"]

    picked = await hz.send(button(picks[1], _message_of(hz)))
    assert "You picked the second answer" in said(picked)
    [correction] = await _rows(hz, Correction)
    assert (correction.reply_id, correction.source) == (first.id, "regenerate")
    assert correction.corrected_text == second.content
    [item] = await _rows(hz, ReviewItem)
    assert item.status == "pending"

    # Changing one's mind replaces the pick.
    await hz.send(button(picks[0], _message_of(hz)))
    [correction] = await _rows(hz, Correction)
    assert (correction.reply_id, correction.corrected_text) == (second.id, first.content)

    assert await approve_pending(hz.app) == 1
    pairs = [e for e in await _rows(hz, DatasetExample) if e.kind == "preference"]
    assert [(p.preferred, p.rejected) for p in pairs] == [(first.content, second.content)]


@pytest.mark.asyncio
async def test_only_the_member_who_asked_gets_another_answer_or_picks(hz: RunningBot) -> None:
    hz.openai.reply_with("An answer.")
    asked = await hz.send(slash("chat", {"message": "Capital of Australia?"}))
    assert asked.original_message is not None
    refused = await hz.send(button("hz.rg", asked.original_message, user=BOB))
    assert "Only the member who asked" in said(refused)
    assert len(await _rows(hz, BotReply)) == 1

    first, second, picks = await _ask_twice(hz)
    stolen = await hz.send(button(picks[1], _message_of(hz), user=BOB))
    assert "not two answers to one question of yours" in said(stolen)
    # Ids that do not name two answers to one question are refused too.
    other = await hz.send(slash("chat", {"message": "Something else entirely"}))
    assert other.original_message is not None
    third = (await _rows(hz, BotReply))[-1]
    for forged in (
        f"hz.rgp:{first.id}:{first.id}:2",
        f"hz.rgp:{first.id}:{third.id}:2",
        f"hz.rgp:{first.id}:{second.id}:3",
    ):
        answer = await hz.send(button(forged, _message_of(hz)))
        assert "nothing to pick" in said(answer) or "damaged or out of date" in said(answer), forged
    assert await _rows(hz, Correction) == []


def _message_of(hz: RunningBot) -> dict[str, Any]:
    """A message of the bot's to press a pick button on (the ephemeral prompt; its content does not matter)."""
    from tests.fakes.interactions import message_payload, next_snowflake

    return message_payload("Which answer is better?", author_bot=True, message_id=next_snowflake())
