"""Corrections and feedback in place: context menu + modal, ``/correct``, rating buttons, ``/feedback``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from hypotez.ml.datasets.examples import examples_from_correction
from hypotez.storage.models import BotReply, Correction, Feedback
from tests.conftest import approve_pending, running_hypotez
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    ADMIN_USER_ID,
    CHANNEL_ID,
    DEFAULT_USER,
    GUILD_ID,
    USER_ID,
    Attachment,
    autocomplete,
    button,
    member_payload,
    message_command,
    message_payload,
    slash,
)

if TYPE_CHECKING:
    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.openai_api import FakeOpenAI


async def _chat(hz: RunningBot, question: str, answer: str) -> dict[str, Any]:
    """Ask, and return the bot's reply message as Discord stores it."""
    hz.openai.reply_with(answer)
    result = await hz.send(slash("chat", {"message": question}))
    original = result.original_message
    assert original is not None
    return original


async def _corrections(hz: RunningBot) -> list[Correction]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(Correction).order_by(Correction.id))).all())


@pytest.mark.asyncio
async def test_context_menu_opens_prefilled_modal_and_submit_stores_correction_and_examples(hz: RunningBot) -> None:
    reply_message = await _chat(hz, "Capital of Australia?", "Sydney is the capital of Australia.")
    opened = await hz.send(message_command("Correct this reply", reply_message))
    modal = opened.modal
    assert modal is not None
    assert modal.title == "Correct this reply"
    assert modal.input("Corrected reply").value == "Sydney is the capital of Australia."

    submitted = await hz.send(modal.submit({"Corrected reply": "Canberra is the capital of Australia."}))
    assert submitted.ephemeral
    assert submitted.content is not None
    assert "Correction saved" in submitted.content
    [correction] = await _corrections(hz)
    assert correction.corrected_text == "Canberra is the capital of Australia."
    assert correction.original_text == "Sydney is the capital of Australia."
    assert correction.author_id == USER_ID
    assert correction.context == [{"role": "user", "content": "Capital of Australia?"}]
    assert correction.source == "modal"
    assert "A curator reviews it" in submitted.content

    # Pending: nothing trains on it yet.  A curator approves it: its examples enter the live dataset.
    assert await hz.services.corrections.examples(correction.id) == []
    assert await approve_pending(hz.app) == 1
    chat, preference = sorted(await hz.services.corrections.examples(correction.id), key=lambda e: e.kind)
    assert chat.kind == "chat"
    assert chat.messages == [
        {"role": "user", "content": "Capital of Australia?"},
        {"role": "assistant", "content": "Canberra is the capital of Australia."},
    ]
    assert preference.kind == "preference"
    assert preference.messages == [{"role": "user", "content": "Capital of Australia?"}]
    assert preference.preferred == "Canberra is the capital of Australia."
    assert preference.rejected == "Sydney is the capital of Australia."
    assert {chat.origin, preference.origin} == {"correction"}


@pytest.mark.asyncio
async def test_second_correction_by_same_member_replaces_and_others_are_kept(hz: RunningBot) -> None:
    reply_message = await _chat(hz, "2+2?", "5")
    opened = await hz.send(message_command("Correct this reply", reply_message))
    assert opened.modal is not None
    await hz.send(opened.modal.submit({"Corrected reply": "4"}))
    again = await hz.send(message_command("Correct this reply", reply_message))
    assert again.modal is not None
    replaced = await hz.send(again.modal.submit({"Corrected reply": "Four."}))
    assert replaced.content is not None
    assert "replaces your earlier one" in replaced.content
    by_admin = await hz.send(message_command("Correct this reply", reply_message, user=ADMIN_MEMBER))
    assert by_admin.modal is not None
    await hz.send(by_admin.modal.submit({"Corrected reply": "2+2 = 4"}, user=ADMIN_MEMBER))

    corrections = await _corrections(hz)
    assert {(c.author_id, c.corrected_text) for c in corrections} == {(USER_ID, "Four."), (ADMIN_USER_ID, "2+2 = 4")}
    mine = next(c for c in corrections if c.author_id == USER_ID)
    assert await approve_pending(hz.app) == 2  # one item per member's correction, the replaced one reused
    examples = await hz.services.corrections.examples(mine.id)
    assert len(examples) == 2  # replaced, not added
    assert all("Four." in (e.preferred or e.messages[-1]["content"]) for e in examples)


@pytest.mark.asyncio
async def test_context_menu_on_a_message_that_is_not_a_reply_is_refused(hz: RunningBot) -> None:
    someone = message_payload("just a member talking", author_bot=False)
    result = await hz.send(message_command("Correct this reply", someone))
    assert result.modal is None
    assert result.ephemeral
    assert result.content is not None
    assert "not one of my replies" in result.content


@pytest.mark.asyncio
async def test_correction_undo_removes_it_and_its_examples(hz: RunningBot) -> None:
    reply_message = await _chat(hz, "Colour of the sky?", "Green.")
    opened = await hz.send(message_command("Correct this reply", reply_message))
    assert opened.modal is not None
    ack = await hz.send(opened.modal.submit({"Corrected reply": "Blue, on a clear day."}))
    [correction] = await _corrections(hz)
    undo_id = f"hz.cu:{correction.id}"
    assert undo_id in [c["custom_id"] for row in ack.components for c in row["components"]]
    ack_message = message_payload(ack.content or "", author_bot=True, components=ack.components, flags=64)
    shown = await hz.send(button(f"hz.cv:{correction.id}", ack_message))
    assert shown.content is not None
    assert "Blue, on a clear day." in shown.content
    undone = await hz.send(button(undo_id, ack_message))
    assert undone.content is not None
    assert "Correction removed" in undone.content
    assert await _corrections(hz) == []
    assert await hz.services.corrections.examples(correction.id) == []


@pytest.mark.asyncio
async def test_correct_command_by_id_and_by_link(hz: RunningBot) -> None:
    reply_message = await _chat(hz, "Largest planet?", "Saturn.")
    by_id = await hz.send(slash("correct", {"message_id": reply_message["id"], "correction": "Jupiter."}))
    assert by_id.ephemeral
    assert by_id.content is not None
    assert "Correction saved" in by_id.content
    link = f"https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{reply_message['id']}"
    by_link = await hz.send(slash("correct", {"message_id": link, "correction": "Jupiter, by far."}))
    assert by_link.content is not None
    assert "replaces your earlier one" in by_link.content
    [correction] = await _corrections(hz)
    assert correction.corrected_text == "Jupiter, by far."
    assert correction.source == "command"


@pytest.mark.asyncio
async def test_correct_command_errors_are_specific(hz: RunningBot) -> None:
    reply_message = await _chat(hz, "q", "a")
    unknown = await hz.send(slash("correct", {"message_id": "123456789012345678", "correction": "x"}))
    assert unknown.content is not None
    assert "not one of my replies" in unknown.content
    garbage = await hz.send(slash("correct", {"message_id": "hello", "correction": "x"}))
    assert garbage.content is not None
    assert "not a message id or link" in garbage.content
    neither = await hz.send(slash("correct", {"message_id": reply_message["id"]}))
    assert neither.content is not None
    assert "either as `correction` or as a `file`" in neither.content
    same = await hz.send(slash("correct", {"message_id": reply_message["id"], "correction": "a"}))
    assert same.content is not None
    assert "same as the reply" in same.content
    assert await _corrections(hz) == []


@pytest.mark.asyncio
async def test_correct_command_with_a_file(hz: RunningBot) -> None:
    reply_message = await _chat(hz, "Write a poem", "Roses are red.")
    poem = "Розы красные,\nфиалки синие 🌹\n" * 200
    attachment = hz.rest.host(Attachment("poem.txt", poem.encode("utf-8"), content_type="text/plain"))
    result = await hz.send(
        slash("correct", {"message_id": reply_message["id"], "file": attachment}, attachments=[attachment])
    )
    assert any("Correction saved" in (c.json or {}).get("content", "") for c in result.followups)
    [correction] = await _corrections(hz)
    assert correction.corrected_text == poem
    assert correction.source == "command-file"

    binary = hz.rest.host(Attachment("x.txt", b"\xff\xfe\x00bad", content_type="text/plain"))
    refused = await hz.send(slash("correct", {"message_id": reply_message["id"], "file": binary}, attachments=[binary]))
    assert any("not UTF-8 text" in (c.json or {}).get("content", "") for c in refused.followups)


@pytest.mark.asyncio
async def test_correct_autocomplete_offers_my_recent_replies(hz: RunningBot) -> None:
    first = await _chat(hz, "alpha question", "alpha answer")
    second = await _chat(hz, "beta question", "beta answer")
    everything = await hz.send(autocomplete("correct", {"message_id": ""}, "message_id"))
    assert [c["value"] for c in everything.choices] == [second["id"], first["id"]]
    assert "beta question → beta answer" in everything.choices[0]["name"]
    filtered = await hz.send(autocomplete("correct", {"message_id": "alpha"}, "message_id"))
    assert [c["value"] for c in filtered.choices] == [first["id"]]
    other_member = await hz.send(autocomplete("correct", {"message_id": ""}, "message_id", user=ADMIN_MEMBER))
    assert other_member.choices == []


@pytest.mark.asyncio
async def test_member_without_the_capability_is_refused_everywhere(hz: RunningBot) -> None:
    reply_message = await _chat(hz, "q", "a")
    outsider = member_payload(DEFAULT_USER, roles=[])
    opened_before = await hz.send(message_command("Correct this reply", reply_message, user=outsider))
    assert opened_before.modal is not None
    await hz.services.guild_settings.update(GUILD_ID, capability_roles={"correct": [999], "feedback": [999]})
    menu = await hz.send(message_command("Correct this reply", reply_message, user=outsider))
    assert menu.modal is None
    assert menu.content is not None
    assert "`correct` capability" in menu.content
    command = await hz.send(slash("correct", {"message_id": reply_message["id"], "correction": "b"}, user=outsider))
    assert command.content is not None
    assert "`correct` capability" in command.content
    thumbs = await hz.send(button("hz.up", reply_message, user=outsider))
    assert thumbs.content is not None
    assert "`feedback` capability" in thumbs.content
    # A modal opened before the grant changed is checked again on submit.
    submit = await hz.send(opened_before.modal.submit({"Corrected reply": "b"}, user=outsider))
    assert submit.ephemeral
    assert submit.content is not None
    assert "`correct` capability" in submit.content
    assert await _corrections(hz) == []


@pytest.mark.asyncio
async def test_rating_buttons_work_after_a_restart(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    async with running_hypotez(bot_settings, openai_fake) as first:
        reply_message = await _chat(first, "Best editor?", "Notepad.")
    # A new bot instance on the same database: the buttons still work.
    async with running_hypotez(bot_settings, openai_fake) as second:
        up = await second.send(button("hz.up", reply_message))
        assert up.ephemeral
        assert up.content is not None
        assert "👍" in up.content
        down = await second.send(button("hz.down", reply_message, user=ADMIN_MEMBER))
        assert down.ephemeral
        invite = [c["custom_id"] for row in down.components for c in row["components"]]
        reply = await second.services.replies.by_message(int(reply_message["id"]), guild_id=GUILD_ID)
        assert reply is not None
        assert invite == [f"hz.correct:{reply[0].id}"]
        # 👎 invites a correction: its button opens the same modal (through miru, in the response body).
        invite_message = message_payload(down.content or "", author_bot=True, components=down.components, flags=64)
        opened = await second.send(button(invite[0], invite_message, user=ADMIN_MEMBER))
        assert opened.modal is not None
        assert opened.modal.input("Corrected reply").value == "Notepad."
        # The Correct button under the reply opens it too.
        direct = await second.send(button("hz.correct", reply_message))
        assert direct.modal is not None
        saved = await second.send(direct.modal.submit({"Corrected reply": "Whatever you like."}))
        assert saved.content is not None
        assert "Correction saved" in saved.content
        async with second.services.db.session() as session:
            ratings = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
        assert [(f.author_id, f.rating, f.kind) for f in ratings] == [
            (USER_ID, 1, "thumbs"),
            (ADMIN_USER_ID, -1, "thumbs"),
        ]
        # Pressing again replaces the member's earlier thumb.
        await second.send(button("hz.down", reply_message))
        async with second.services.db.session() as session:
            mine = (await session.scalars(select(Feedback).where(Feedback.author_id == USER_ID))).all()
        assert [f.rating for f in mine] == [-1]


@pytest.mark.asyncio
async def test_feedback_modal_and_stats(hz: RunningBot) -> None:
    reply_message = await _chat(hz, "q", "a")
    general = await hz.send(slash("feedback", subcommand="send"))
    assert general.modal is not None
    bad = await hz.send(general.modal.submit({"Rating from 1 (bad) to 5 (great)": "9"}))
    assert bad.content is not None
    assert "from 1 to 5" in bad.content
    ok = await hz.send(
        general.modal.submit({"Rating from 1 (bad) to 5 (great)": "4", "What was good or wrong?": "Хорошо 👍"})
    )
    assert ok.content is not None
    assert "4/5" in ok.content
    about = await hz.send(message_command("Rate this reply", reply_message))
    assert about.modal is not None
    assert about.modal.title == "Feedback on this reply"
    await hz.send(about.modal.submit({"Rating from 1 (bad) to 5 (great)": "2"}))
    await hz.send(button("hz.up", reply_message))
    await hz.send(slash("correct", {"message_id": reply_message["id"], "correction": "b"}))

    async with hz.services.db.session() as session:
        rows = (await session.scalars(select(Feedback).order_by(Feedback.id))).all()
    assert [(f.kind, f.rating, f.comment, f.reply_id is not None) for f in rows] == [
        ("rating", 4, "Хорошо 👍", False),
        ("rating", 2, None, True),
        ("thumbs", 1, None, True),
    ]
    refused = await hz.send(slash("feedback", subcommand="stats"))
    assert refused.content is not None
    assert "`curate` capability" in refused.content
    stats = await hz.send(slash("feedback", {"days": 7}, subcommand="stats", user=ADMIN_MEMBER))
    [field] = stats.embeds[0]["fields"]
    assert field["name"] == "gpt-4o-mini"
    assert "👍 1 · 👎 0 · approval 100%" in field["value"]
    assert "1 rating (mean 2.0/5) · 1 correction" in field["value"]
    assert "General feedback (not about a reply): 1 rating, mean 4.0/5" in stats.embeds[0]["description"]


@pytest.mark.asyncio
async def test_long_reply_is_corrected_per_part(hz: RunningBot) -> None:
    first = "First part. " * 150
    second = "Second part with a mistake. " * 100
    text = (first + second).strip()
    assert len(text) > 4000
    await _chat(hz, "long", text)
    async with hz.services.db.session() as session:
        reply = (await session.scalars(select(BotReply))).one()
    parts = await hz.services.replies.parts(reply.id)
    assert len(parts) >= 2
    last = parts[-1]
    target = message_payload(text[last.start : last.end], author_bot=True, message_id=last.message_id)
    opened = await hz.send(message_command("Correct this reply", target))
    assert opened.modal is not None
    assert opened.modal.title == "Correct this part of the reply"
    assert opened.modal.input("Corrected part").value == text[last.start : last.end]
    fixed = text[last.start : last.end].replace("mistake", "fix")
    await hz.send(opened.modal.submit({"Corrected part": fixed}))
    [correction] = await _corrections(hz)
    assert correction.corrected_text == text[: last.start] + fixed


@pytest.mark.asyncio
async def test_undo_leaves_datasets_built_earlier_untouched(hz: RunningBot) -> None:
    reply_message = await _chat(hz, "Boiling point of water?", "50 °C")
    await hz.send(slash("correct", {"message_id": reply_message["id"], "correction": "100 °C at sea level"}))
    await approve_pending(hz.app)
    await hz.send(slash("dataset", {"name": "snapshot"}, subcommand="build", user=ADMIN_MEMBER))
    snapshot = await hz.services.datasets.resolve(GUILD_ID, "snapshot")
    before = len(await hz.services.datasets.examples(snapshot.id))
    assert before == 2
    [correction] = await _corrections(hz)
    await hz.services.corrections.delete(correction.id)
    assert await hz.services.corrections.examples(correction.id) != []  # the snapshot's copies remain
    assert len(await hz.services.datasets.examples(snapshot.id)) == before
    live = await hz.services.datasets.resolve(GUILD_ID, "corrections")
    assert await hz.services.datasets.examples(live.id) == []


@pytest.mark.asyncio
async def test_concurrent_corrections_of_one_reply_store_one(hz: RunningBot) -> None:
    import asyncio

    reply_message = await _chat(hz, "q?", "wrong")
    found = await hz.services.replies.by_message(int(reply_message["id"]), guild_id=GUILD_ID)
    assert found is not None
    results = await asyncio.gather(
        *(
            hz.services.corrections.upsert(
                found[0],
                author_id=USER_ID,
                corrected_text=f"right {i}",
                source="test",
                examples=examples_from_correction,
                trusted=True,
            )
            for i in range(4)
        )
    )
    assert sum(1 for _, created, _ in results if created) == 1
    [correction] = await _corrections(hz)
    assert correction.corrected_text.startswith("right ")
    assert len(await hz.services.corrections.examples(correction.id)) == 2
    assert len({item.id for _, _, item in results}) == 1  # one review item


@pytest.mark.asyncio
async def test_a_double_click_on_a_thumb_stores_one(hz: RunningBot) -> None:
    import asyncio

    reply_message = await _chat(hz, "q?", "a")
    await asyncio.gather(*(hz.send(button("hz.down", reply_message)) for _ in range(3)))
    await hz.send(button("hz.up", reply_message))
    async with hz.services.db.session() as session:
        mine = (await session.scalars(select(Feedback).where(Feedback.author_id == USER_ID))).all()
    assert [(f.kind, f.rating) for f in mine] == [("thumbs", 1)]
