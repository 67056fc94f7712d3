"""Feedback as curators read it: ``/feedback list`` page by page with stateless Previous / Next, its filters and
links, **Needs a correction** (one review item per reply), ratings approved on arrival for trusted roles, general
feedback in ``/feedback stats``; and replies the model could not give (empty, or a failed backend) stored and
correctable."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select, update

from hypotez.plugins._delivery import EMPTY_TEXT, FAILED_TEXT
from hypotez.storage.models import BotReply, Correction, Feedback, ReviewItem, utcnow
from hypotez.storage.repositories import ReviewRepository
from tests.conftest import running_hypotez, signed_form
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    ADMIN_ROLE_ID,
    ADMIN_USER_ID,
    CHANNEL_ID,
    GUILD_ID,
    USER_ID,
    button,
    in_other_guild,
    message_command,
    message_payload,
    modal_submit,
    slash,
)

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.interactions import InteractionResult
    from tests.fakes.openai_api import FakeOpenAI

_RATING = "Rating from 1 (bad) to 5 (great)"
_COMMENT = "What was good or wrong?"


async def _chat(hz: RunningBot, question: str, answer: str) -> dict[str, Any]:
    hz.openai.reply_with(answer)
    result = await hz.send(slash("chat", {"message": question}))
    original = result.original_message
    assert original is not None
    return original


async def _reply_of(hz: RunningBot, message: dict[str, Any]) -> BotReply:
    found = await hz.services.replies.by_message(int(message["id"]), guild_id=GUILD_ID)
    assert found is not None
    return found[0]


async def _general(hz: RunningBot, rating: int, comment: str) -> None:
    done = await hz.send(modal_submit(signed_form(hz.app, "hz.fm:0"), {"rating": str(rating), "comment": comment}))
    assert done.content is not None
    assert f"({rating}/5)" in done.content


def _ids(result: InteractionResult) -> list[str]:
    return [c["custom_id"] for row in result.components for c in row["components"]]


def _message_of(result: InteractionResult) -> dict[str, Any]:
    """The ephemeral list message as the client sends it back with a button press."""
    return message_payload(result.content or "", author_bot=True, components=result.components, flags=64) | {
        "embeds": result.embeds
    }


def _lines(result: InteractionResult) -> list[str]:
    [embed] = result.embeds
    return str(embed["description"]).splitlines()


async def _list(hz: RunningBot, options: dict[str, Any] | None = None) -> InteractionResult:
    return await hz.send(slash("feedback", options or {}, subcommand="list", user=ADMIN_MEMBER))


async def _items(hz: RunningBot) -> list[ReviewItem]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(ReviewItem).order_by(ReviewItem.id))).all())


@pytest.mark.asyncio
async def test_the_list_pages_through_feedback_newest_first_with_links(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    async with running_hypotez(bot_settings, openai_fake) as hz:
        wrong = await _chat(hz, "Capital of Australia?", "Sydney.")
        await hz.send(button("hz.down", wrong))
        right = await _chat(hz, "Capital of France?", "Paris.")
        rate = await hz.send(message_command("Rate this reply", right))
        assert rate.modal is not None
        await hz.send(rate.modal.submit({_RATING: "5", _COMMENT: "Exactly right"}))
        for i in range(11):
            await _general(hz, 1 + i % 5, f"general note {i}")

        first = await _list(hz)
        assert first.ephemeral
        [embed] = first.embeds
        assert embed["title"] == "Feedback: 13 items"
        assert embed["footer"]["text"].startswith("Page 1 of 2 · last 30 days")
        lines = _lines(first)
        assert len(lines) == 10
        assert lines[0].startswith("**1.** 1/5 · “general note 10”")  # newest first
        assert f"<@{USER_ID}> <t:" in lines[0]
        assert "general feedback, not about a reply" in lines[0]
        assert lines[9].startswith("**10.**")
        assert "general note 1”" in lines[9]
        assert first.data["allowed_mentions"]["parse"] == []  # the authors are named, not pinged
        assert _ids(first) == ["hz.fp:1:30:0:0:0"]  # only Next: this is the first page

        second = await hz.send(button("hz.fp:1:30:0:0:0", _message_of(first), user=ADMIN_MEMBER))
        assert second.response_type == 7  # the list message is updated in place
        lines = _lines(second)
        assert [line.split(" ", 1)[0] for line in lines] == ["**11.**", "**12.**", "**13.**"]
        assert "general note 0”" in lines[0]
        assert lines[1].startswith("**12.** 5/5 · “Exactly right”")
        assert f"https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{right['id']})" in lines[1]
        assert lines[2].startswith("**13.** 👎 · ")
        assert f"https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{wrong['id']})" in lines[2]
        assert "by `gpt-4o-mini`" in lines[2]
        wrong_reply = await _reply_of(hz, wrong)
        # The 👎 on a reply nobody corrected can be sent for correction; Previous leads back.
        assert _ids(second) == [f"hz.fn:{wrong_reply.id}", "hz.fp:0:30:0:0:0"]
        assert second.embeds[0]["footer"]["text"].startswith("Page 2 of 2")

        back = await hz.send(button("hz.fp:0:30:0:0:0", _message_of(second), user=ADMIN_MEMBER))
        assert _lines(back) == _lines(first)

    # Another process on the same database answers the same button the same way: the id carries it all.
    async with running_hypotez(bot_settings, openai_fake) as later:
        again = await later.send(button("hz.fp:1:30:0:0:0", _message_of(first), user=ADMIN_MEMBER))
        assert _lines(again) == _lines(second)
        assert _ids(again) == _ids(second)


@pytest.mark.asyncio
async def test_the_list_filters_by_rating_kind_model_and_days(hz: RunningBot) -> None:
    low = await _chat(hz, "2+2?", "5")
    await hz.send(button("hz.down", low))
    good = await _chat(hz, "Sky colour?", "Blue.")
    await hz.send(button("hz.up", good))
    await _general(hz, 2, "meh")
    await _general(hz, 4, "nice bot")
    await _general(hz, 5, "long ago")
    async with hz.services.db.session() as session, session.begin():
        await session.execute(
            update(Feedback).where(Feedback.comment == "long ago").values(created_at=utcnow() - dt.timedelta(days=40))
        )

    everything = await _list(hz)
    assert everything.embeds[0]["title"] == "Feedback: 4 items"  # the one 40 days old is outside 30 days
    older = await _list(hz, {"days": 60})
    assert older.embeds[0]["title"] == "Feedback: 5 items"
    assert any("“long ago”" in line for line in _lines(older))

    lows = await _list(hz, {"rating": "low"})
    assert lows.embeds[0]["title"] == "Feedback: 2 items"
    assert [line.split(" · ")[0] for line in _lines(lows)] == ["**1.** 2/5", "**2.** 👎"]
    assert "low ratings" in lows.embeds[0]["footer"]["text"]
    thumbs_up = await _list(hz, {"rating": "up"})
    assert [line.split(" · ")[0] for line in _lines(thumbs_up)] == ["**1.** 👍"]
    fours = await _list(hz, {"rating": "4"})
    assert len(_lines(fours)) == 1
    assert "“nice bot”" in _lines(fours)[0]

    general = await _list(hz, {"kind": "general"})
    assert general.embeds[0]["title"] == "Feedback: 2 items"
    assert all("general feedback, not about a reply" in line for line in _lines(general))
    thumbs = await _list(hz, {"kind": "thumbs"})
    assert thumbs.embeds[0]["title"] == "Feedback: 2 items"
    assert all("[the reply](" in line for line in _lines(thumbs))

    by_model = await _list(hz, {"model": "gpt-4o-mini"})
    assert by_model.embeds[0]["title"] == "Feedback: 2 items"
    assert "`gpt-4o-mini`" in by_model.embeds[0]["footer"]["text"]
    other_model = await _list(hz, {"model": "ft:gpt-4o-mini:acme:other:x9"})
    assert other_model.embeds[0]["title"] == "Feedback: 0 items"
    assert _lines(other_model) == ["Nothing matches these filters."]


@pytest.mark.asyncio
async def test_page_buttons_keep_the_filters_including_a_model_name_with_colons(hz: RunningBot) -> None:
    model = "ft:gpt-4o-mini:acme:support:x1"
    for i in range(12):
        reply_message = await _chat(hz, f"question {i}", f"answer {i}")
        await hz.send(button("hz.down", reply_message))
    # Those replies were the fine-tune's (as if the server had used it for them); one more is the base model's.
    async with hz.services.db.session() as session, session.begin():
        await session.execute(update(Feedback).values(model=model))
    base = await _chat(hz, "another", "reply")
    await hz.send(button("hz.down", base))
    await _general(hz, 1, "general and low")

    first = await _list(hz, {"rating": "low", "model": model})
    assert first.embeds[0]["title"] == "Feedback: 12 items"
    assert all(f"by `{model}`" in line for line in _lines(first))
    [next_id] = [i for i in _ids(first) if i.startswith("hz.fp:")]
    assert next_id.startswith("hz.fp:1:30:3:0:")
    assert len([i for i in _ids(first) if i.startswith("hz.fn:")]) == 10  # one per low-rated reply
    second = await hz.send(button(next_id, _message_of(first), user=ADMIN_MEMBER))
    assert len(_lines(second)) == 2
    assert all(f"by `{model}`" in line and "👎" in line for line in _lines(second))
    assert "general and low" not in "\n".join(_lines(second))

    thumbs = await _list(hz, {"rating": "low", "kind": "thumbs"})
    assert thumbs.embeds[0]["title"] == "Feedback: 13 items"
    assert [i for i in _ids(thumbs) if i.startswith("hz.fp:")] == ["hz.fp:1:30:3:1:0"]

    # A tampered filter is refused, not guessed at.
    tampered = await hz.send(button("hz.fp:1:30:99:1:0", _message_of(thumbs), user=ADMIN_MEMBER))
    assert tampered.content is not None
    assert "damaged or out of date" in tampered.content
    malformed = await hz.send(button("hz.fp:1:30:x:1:0", _message_of(thumbs), user=ADMIN_MEMBER))
    assert malformed.content is not None
    assert "damaged or out of date" in malformed.content
    unknown_model = await hz.send(button("hz.fp:1:30:3:0:12345", _message_of(thumbs), user=ADMIN_MEMBER))
    assert unknown_model.content is not None
    assert "Run `/feedback list`" in unknown_model.content


@pytest.mark.asyncio
async def test_needs_a_correction_opens_one_pending_review_item(hz: RunningBot) -> None:
    wrong = await _chat(hz, "Boiling point of water?", "50 °C")
    await hz.send(button("hz.down", wrong))
    corrected = await _chat(hz, "Largest planet?", "Saturn.")
    await hz.send(button("hz.down", corrected, user=ADMIN_MEMBER))
    await hz.send(slash("correct", {"message_id": corrected["id"], "correction": "Jupiter."}))
    wrong_reply, corrected_reply = await _reply_of(hz, wrong), await _reply_of(hz, corrected)
    before = await _items(hz)

    listed = await _list(hz)
    # The corrected reply's 👎 offers nothing: it has its correction.
    assert [i for i in _ids(listed) if i.startswith("hz.fn:")] == [f"hz.fn:{wrong_reply.id}"]
    assert any("corrected" in line and corrected["id"] in line for line in _lines(listed))
    message = _message_of(listed)

    sent = await hz.send(button(f"hz.fn:{wrong_reply.id}", message, user=ADMIN_MEMBER))
    assert sent.ephemeral
    assert sent.content is not None
    assert "Sent to the review queue" in sent.content
    new = [i for i in await _items(hz) if i.id not in {b.id for b in before}]
    assert [(i.kind, i.status, i.reply_id, i.author_id, i.guild_id) for i in new] == [
        ("needs_correction", "pending", wrong_reply.id, USER_ID, GUILD_ID)
    ]
    async with hz.services.db.session() as session:
        rated = await session.get(Feedback, new[0].feedback_id)
    assert rated is not None
    assert (rated.kind, rated.rating, rated.reply_id) == ("thumbs", -1, wrong_reply.id)

    again = await hz.send(button(f"hz.fn:{wrong_reply.id}", message, user=ADMIN_MEMBER))
    assert again.content is not None
    assert "already in the review queue" in again.content
    assert len(await _items(hz)) == len(before) + 1  # not duplicated

    relisted = await _list(hz)
    assert not [i for i in _ids(relisted) if i.startswith("hz.fn:")]
    assert any("in the review queue for a correction" in line and wrong["id"] in line for line in _lines(relisted))

    # A forged id for the corrected reply is refused in plain words, and stores nothing.
    forged = await hz.send(button(f"hz.fn:{corrected_reply.id}", message, user=ADMIN_MEMBER))
    assert forged.content is not None
    assert "already has a correction" in forged.content
    assert len(await _items(hz)) == len(before) + 1


@pytest.mark.asyncio
async def test_members_without_curate_cannot_list_or_press_and_other_servers_are_refused(hz: RunningBot) -> None:
    wrong = await _chat(hz, "q", "wrong")
    await hz.send(button("hz.down", wrong))
    wrong_reply = await _reply_of(hz, wrong)
    listed = await _list(hz)
    message = _message_of(listed)
    before = await _items(hz)

    refused = await hz.send(slash("feedback", subcommand="list"))
    assert refused.content is not None
    assert "`curate` capability" in refused.content
    assert not refused.embeds
    pressed = await hz.send(button(f"hz.fn:{wrong_reply.id}", message))
    assert pressed.content is not None
    assert "`curate` capability" in pressed.content
    paged = await hz.send(button("hz.fp:0:30:0:0:0", message))
    assert paged.content is not None
    assert "`curate` capability" in paged.content
    assert not paged.embeds

    # An administrator of another server replaying the id: that reply is not theirs to send anywhere.
    elsewhere = in_other_guild(button(f"hz.fn:{wrong_reply.id}", message, user=ADMIN_MEMBER), GUILD_ID + 1)
    replayed = await hz.send(elsewhere)
    assert replayed.content is not None
    assert "no longer exists here" in replayed.content
    assert [i.id for i in await _items(hz)] == [i.id for i in before]

    in_dm = await hz.send(slash("feedback", subcommand="list", user=ADMIN_MEMBER["user"], guild=False))
    assert in_dm.content is not None
    assert "works only in a server" in in_dm.content


@pytest.mark.asyncio
async def test_ratings_by_trusted_roles_are_approved_on_arrival(hz: RunningBot) -> None:
    await hz.app.get(ReviewRepository).set_policy(GUILD_ID, trusted_roles=[ADMIN_ROLE_ID])
    reply_message = await _chat(hz, "q", "a")
    trusted = await hz.send(button("hz.up", reply_message, user=ADMIN_MEMBER))
    assert trusted.content is not None
    assert trusted.content == "Thanks for the 👍. Your role is trusted here, so it counts right away."
    member = await hz.send(button("hz.down", reply_message))
    assert member.content is not None
    assert member.content.startswith("Thanks for the 👎. It counts once a curator approves it.")
    rated = await hz.send(message_command("Rate this reply", reply_message, user=ADMIN_MEMBER))
    assert rated.modal is not None
    stored = await hz.send(rated.modal.submit({_RATING: "4"}, user=ADMIN_MEMBER))
    assert stored.content == "Thanks! Feedback stored (4/5). Your role is trusted here, so it counts right away."

    async with hz.services.db.session() as session:
        rows = (
            await session.execute(
                select(Feedback.author_id, Feedback.kind, ReviewItem.status)
                .join(ReviewItem, ReviewItem.feedback_id == Feedback.id)
                .order_by(Feedback.id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        (ADMIN_USER_ID, "thumbs", "approved"),
        (USER_ID, "thumbs", "pending"),
        (ADMIN_USER_ID, "rating", "approved"),
    ]


@pytest.mark.asyncio
async def test_stats_count_general_feedback(hz: RunningBot) -> None:
    reply_message = await _chat(hz, "q", "a")
    await hz.send(button("hz.up", reply_message))
    await _general(hz, 5, "love it")
    await _general(hz, 2, "slow")
    stats = await hz.send(slash("feedback", subcommand="stats", user=ADMIN_MEMBER))
    [embed] = stats.embeds
    assert embed["title"] == "Feedback, last 30 days"
    assert "General feedback (not about a reply): 2 ratings, mean 3.5/5" in embed["description"]
    [field] = embed["fields"]
    assert field["name"] == "gpt-4o-mini"
    assert "👍 1 · 👎 0" in field["value"]
    assert "0 ratings · 0 corrections" in field["value"]

    # General feedback alone is still feedback to report.
    async with hz.services.db.session() as session, session.begin():
        await session.execute(update(Feedback).where(Feedback.reply_id.is_not(None)).values(model=None))
    only_general = await hz.send(slash("feedback", subcommand="stats", user=ADMIN_MEMBER))
    assert "2 ratings, mean 3.5/5" in only_general.embeds[0]["description"]


@pytest.mark.asyncio
async def test_an_empty_answer_is_stored_shown_and_correctable(hz: RunningBot) -> None:
    hz.openai.reply_with("")
    result = await hz.send(slash("chat", {"message": "Say something about Canberra"}))
    shown = result.original_message
    assert shown is not None
    assert shown["content"] == EMPTY_TEXT
    assert not shown["flags"] & 64  # where the answer would have been
    assert _ids_of(shown) == ["hz.up", "hz.down", "hz.correct", "hz.rg"]
    async with hz.services.db.session() as session:
        [reply] = (await session.scalars(select(BotReply))).all()
    assert (reply.outcome, reply.content, reply.message_id) == ("empty", "", int(shown["id"]))
    assert reply.prompt_messages == [{"role": "user", "content": "Say something about Canberra"}]

    opened = await hz.send(message_command("Correct this reply", shown))
    assert opened.modal is not None
    assert not opened.modal.input("The answer it should have given").value  # nothing to prefill
    saved = await hz.send(
        opened.modal.submit({"The answer it should have given": "Canberra is the capital of Australia."})
    )
    assert saved.content is not None
    assert "Correction saved" in saved.content
    async with hz.services.db.session() as session:
        [correction] = (await session.scalars(select(Correction))).all()
    assert (correction.original_text, correction.corrected_text) == ("", "Canberra is the capital of Australia.")
    [item] = await _items(hz)
    assert (item.kind, item.status, item.correction_id) == ("correction", "pending", correction.id)

    # The ✏️ under it opens the same (empty) box; the stats count the empty answer against its model.
    pencil = await hz.send(button("hz.correct", shown, user=ADMIN_MEMBER))
    assert pencil.modal is not None
    assert not pencil.modal.input("The answer it should have given").value
    stats = await hz.send(slash("feedback", subcommand="stats", user=ADMIN_MEMBER))
    [field] = stats.embeds[0]["fields"]
    assert "1 correction · 1 empty answer" in field["value"]


def _ids_of(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message.get("components") or [] for c in row["components"]]


@pytest.mark.asyncio
async def test_a_failed_backend_is_stored_as_failed_and_correctable_with_the_reason_but_no_secret(
    hz: RunningBot,
) -> None:
    upstream = "upstream stack trace: node-7f3 sk-live-ABCDEF0123456789"
    hz.openai.fail_next(500, message=upstream, path_contains="/chat/completions")
    result = await hz.send(slash("chat", {"message": "What is 2+2?"}))
    shown = result.original_message
    assert shown is not None
    assert shown["content"] == FAILED_TEXT
    assert _ids_of(shown) == ["hz.up", "hz.down", "hz.correct", "hz.rg"]
    whispered = [c.json for c in result.followups if c.method == "POST" and isinstance(c.json, dict)]
    assert whispered[-1]["flags"] & 64
    assert "failed (HTTP 500)" in whispered[-1]["content"]  # why, to the member alone
    # The server's own explanation, with anything like a credential redacted.
    assert "It said: “upstream stack trace: node-7f3 [redacted]”" in whispered[-1]["content"]
    everything_sent = " ".join(str(call.json) for call in hz.rest.calls if call.json is not None)
    assert "sk-live" not in everything_sent
    assert "sk-test-key" not in everything_sent

    async with hz.services.db.session() as session:
        [reply] = (await session.scalars(select(BotReply))).all()
    assert (reply.outcome, reply.content, reply.model) == ("failed", "", "gpt-4o-mini")
    assert reply.prompt_messages == [{"role": "user", "content": "What is 2+2?"}]
    assert reply.message_id == int(shown["id"])

    down = await hz.send(button("hz.down", shown))
    assert f"hz.correct:{reply.id}" in _ids(down)
    opened = await hz.send(button("hz.correct", shown))
    assert opened.modal is not None
    assert not opened.modal.input("The answer it should have given").value
    saved = await hz.send(opened.modal.submit({"The answer it should have given": "4"}))
    assert saved.content is not None
    assert "Correction saved" in saved.content
    items = await _items(hz)
    assert sorted((i.kind, i.status) for i in items) == [("correction", "pending"), ("rating", "pending")]

    # No model gave that reply: its 👎 and correction are reported apart, not held against gpt-4o-mini.
    hz.openai.reply_with("Fine.")
    ok = await hz.send(slash("chat", {"message": "And now?"}))
    assert ok.original_message is not None
    await hz.send(button("hz.up", ok.original_message))
    stats = await hz.send(slash("feedback", subcommand="stats", user=ADMIN_MEMBER))
    [embed] = stats.embeds
    [field] = embed["fields"]
    assert "👍 1 · 👎 0 · approval 100%" in field["value"]
    assert "0 ratings · 0 corrections" in field["value"]
    assert (
        "The model service failed to answer 1 question; the 1 rating and 1 correction made on those replies are "
        "not counted per model." in embed["description"]
    )
    listed = await _list(hz, {"rating": "down"})
    assert "(the model service failed)" in _lines(listed)[0]


@pytest.mark.asyncio
async def test_a_private_chat_that_fails_says_why_in_the_reply_itself(hz: RunningBot) -> None:
    hz.openai.delay_next(10, times=5)  # the bot gives up after 1 s
    result = await hz.send(slash("chat", {"message": "hello", "private": True}))
    shown = result.original_message
    assert shown is not None
    assert shown["content"].startswith(FAILED_TEXT)
    assert "did not answer in time" in shown["content"]
    assert _ids_of(shown) == ["hz.up", "hz.down", "hz.correct", "hz.rg"]
    async with hz.services.db.session() as session:
        [reply] = (await session.scalars(select(BotReply))).all()
    assert reply.outcome == "failed"


@pytest.mark.asyncio
async def test_a_channel_reply_that_fails_is_stored_and_says_why_in_plain_words(hz: RunningBot) -> None:
    """Gateway mode: a member replies to the bot, the model service fails; the reply is posted in the channel
    with the usual buttons and the plain reason, and stored as failed, continuing the conversation."""
    from tests.conftest import message_to_bot
    from tests.fakes.interactions import next_snowflake

    first = await _chat(hz, "hi", "hello")
    hz.openai.fail_next(500, message="upstream node-7f3 exploded", path_contains="/chat/completions")
    message = hz.app.bot.entity_factory.deserialize_message(
        message_payload("and then?", author_bot=False, message_id=next_snowflake(), referenced_message=first)
    )
    answered = await message_to_bot(hz, message)
    assert answered is None  # no answer to speak or continue from
    [posted] = [c.json for c in hz.rest.calls_to("POST", f"/channels/{CHANNEL_ID}/messages") if c.json]
    assert posted["content"].startswith(FAILED_TEXT)
    assert "failed (HTTP 500)" in posted["content"]
    assert "It said: “upstream node-7f3 exploded”" in posted["content"]  # the server's own reason
    assert posted["allowed_mentions"]["parse"] == []
    assert [c["custom_id"] for row in posted["components"] for c in row["components"]] == [
        "hz.up",
        "hz.down",
        "hz.correct",
        "hz.rg",
    ]
    async with hz.services.db.session() as session:
        replies = (await session.scalars(select(BotReply).order_by(BotReply.id))).all()
    assert [(r.outcome, r.content, r.user_text) for r in replies] == [
        ("ok", "hello", "hi"),
        ("failed", "", "and then?"),
    ]
    parent = replies[0]
    assert replies[1].parent_id == parent.id
    assert replies[1].prompt_messages[-1] == {"role": "user", "content": "and then?"}
