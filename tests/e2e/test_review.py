"""The review queue as curators work it: ``/review next`` and its buttons, the review policy, statistics, the
review channel, and what the authors are told."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from hypotez.plugins.review import post_to_review_channel
from hypotez.storage.models import Dataset, DatasetExample, ReviewItem, ReviewKind, ReviewVote
from hypotez.storage.repositories import ReviewRepository
from hypotez.storage.repositories.reviews import open_item
from tests.conftest import running_hypotez, signed_form
from tests.fakes.discord_rest import FakeDiscordREST
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    ADMIN_USER_ID,
    EPHEMERAL,
    GUILD_ID,
    USER_ID,
    ChannelRef,
    RoleRef,
    button,
    in_other_guild,
    member_payload,
    modal_submit,
    slash,
    user_payload,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from hypotez.config import Settings
    from tests.conftest import RunningBot
    from tests.fakes.interactions import InteractionResult
    from tests.fakes.openai_api import FakeOpenAI

OTHER_GUILD_ID = 1_100_000_000_000_000_999
CURATOR_ROLE_ID = 1_100_000_000_000_000_410
TRUSTED_ROLE_ID = 1_100_000_000_000_000_420
CAROL_ID = 1_100_000_000_000_000_310
REVIEW_CHANNEL_ID = 1_100_000_000_000_000_250
#: A curator by role (``curate`` granted to CURATOR_ROLE_ID in the tests that use her), not an administrator.
CAROL = member_payload(user_payload(CAROL_ID, "carol"), roles=[CURATOR_ROLE_ID])


# -- helpers ----------------------------------------------------------------------------------------------------


async def _chat(hz: RunningBot, question: str, answer: str, *, user: dict[str, Any] | None = None) -> dict[str, Any]:
    hz.openai.reply_with(answer)
    original = (await hz.send(slash("chat", {"message": question}, user=user))).original_message
    assert original is not None
    return original


async def _correct(
    hz: RunningBot, question: str, answer: str, corrected: str, *, user: dict[str, Any] | None = None
) -> ReviewItem:
    """A member asks, the bot answers, the member corrects it; the correction's review item."""
    message = await _chat(hz, question, answer, user=user)
    saved = await hz.send(slash("correct", {"message_id": message["id"], "correction": corrected}, user=user))
    assert "Correction saved" in (saved.content or ""), saved
    async with hz.services.db.session() as session:
        item = await session.scalar(select(ReviewItem).order_by(ReviewItem.id.desc()).limit(1))
    assert item is not None
    assert item.kind == ReviewKind.CORRECTION
    return item


async def _item(hz: RunningBot, item_id: int) -> ReviewItem:
    async with hz.services.db.session() as session:
        item = await session.get(ReviewItem, item_id)
    assert item is not None
    return item


async def _votes(hz: RunningBot, item_id: int) -> list[ReviewVote]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(ReviewVote).where(ReviewVote.item_id == item_id))).all())


async def _live_examples(hz: RunningBot, correction_id: int | None) -> list[DatasetExample]:
    """The correction's examples in the server's live ``corrections`` dataset."""
    async with hz.services.db.session() as session:
        rows = await session.scalars(
            select(DatasetExample)
            .join(Dataset, Dataset.id == DatasetExample.dataset_id)
            .where(Dataset.name == "corrections", DatasetExample.source_ref == f"correction:{correction_id}")
        )
        return list(rows.all())


def _ids(result: InteractionResult | dict[str, Any]) -> list[str]:
    components = result.components if not isinstance(result, dict) else result.get("components") or []
    return [c["custom_id"] for row in components for c in row["components"]]


def _message(result: InteractionResult) -> dict[str, Any]:
    message = result.original_message
    assert message is not None, result
    return message


async def _next(hz: RunningBot, user: dict[str, Any] = ADMIN_MEMBER) -> InteractionResult:
    shown = await hz.send(slash("review", subcommand="next", user=user))
    assert shown.ephemeral
    return shown


def _reviews(hz: RunningBot) -> ReviewRepository:
    return hz.app.get(ReviewRepository)


async def _grant_curate_to_carol(hz: RunningBot) -> None:
    await hz.services.guild_settings.update(GUILD_ID, capability_roles={"curate": [CURATOR_ROLE_ID]})


# -- approving and rejecting ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_correction_waits_until_a_curator_approves_it_from_review_next(hz: RunningBot) -> None:
    item = await _correct(hz, "Capital of Australia?", "Sydney.", "Canberra.")
    assert item.status == "pending"
    assert await _live_examples(hz, item.correction_id) == []

    shown = await _next(hz)
    text = shown.content or ""
    assert f"Review #{item.id}" in text
    assert "> Capital of Australia?" in text  # the conversation
    assert "> Sydney." in text  # the original reply
    assert "> Canberra." in text  # the correction
    assert f"<@{USER_ID}>" in text  # who made it
    assert "<t:" in text  # and when
    assert ":R>" in text
    assert "**Votes:** none yet" in text
    assert "No other item is pending." in text
    assert shown.data["allowed_mentions"]["parse"] == []  # the mention pings nobody
    assert _ids(shown) == [f"hz.ra:{item.id}", f"hz.re:{item.id}", f"hz.rr:{item.id}", f"hz.rs:{item.id}"]

    approved = await hz.send(button(f"hz.ra:{item.id}", _message(shown), user=ADMIN_MEMBER))
    assert approved.response_type == 7  # the same message, updated
    assert f"You approved #{item.id}" in (approved.content or "")
    assert "Nothing to review" in (approved.content or "")
    assert _ids(approved) == []
    assert (await _item(hz, item.id)).status == "approved"
    live = await _live_examples(hz, item.correction_id)
    assert sorted(e.kind for e in live) == ["chat", "preference"]
    assert all("Canberra." in (e.preferred or e.messages[-1]["content"]) for e in live)


@pytest.mark.asyncio
async def test_a_rejected_correction_never_enters_the_dataset_and_build_leaves_it_out(hz: RunningBot) -> None:
    good = await _correct(hz, "Largest planet?", "Saturn.", "Jupiter.")
    bad = await _correct(hz, "Boiling point of water?", "100 °C at sea level.", "50 °C.")

    first = await _next(hz)
    assert f"Review #{good.id}" in (first.content or "")
    assert "1 more pending." in (first.content or "")
    after_approval = await hz.send(button(f"hz.ra:{good.id}", _message(first), user=ADMIN_MEMBER))
    assert f"Review #{bad.id}" in (after_approval.content or "")  # the next item, on the same message

    opened = await hz.send(button(f"hz.rr:{bad.id}", _message(after_approval), user=ADMIN_MEMBER))
    assert opened.modal is not None
    assert opened.modal.custom_id.startswith(f"hz.rrm:{bad.id}:")  # signed for the curator who opened it
    reason_input = opened.modal.inputs[0]
    assert not reason_input.required
    rejected = await hz.send(
        modal_submit(
            opened.modal.custom_id,
            {reason_input.custom_id: "The original was right."},
            message=_message(after_approval),
            user=ADMIN_MEMBER,
        )
    )
    assert rejected.response_type == 7
    assert f"You rejected #{bad.id}" in (rejected.content or "")
    stored = await _item(hz, bad.id)
    assert stored.status == "rejected"
    assert stored.reason == "The original was right."
    assert await _live_examples(hz, bad.correction_id) == []

    # A rejection is final: a later approval is refused.
    again = await hz.send(button(f"hz.ra:{bad.id}", _message(rejected), user=ADMIN_MEMBER))
    assert "rejection is final" in (again.content or "")
    assert (await _item(hz, bad.id)).status == "rejected"

    await hz.send(slash("dataset", {"name": "gold"}, subcommand="build", user=ADMIN_MEMBER))
    dataset = await hz.services.datasets.resolve(GUILD_ID, "gold")
    refs = {e.source_ref for e in await hz.services.datasets.examples(dataset.id)}
    assert f"correction:{good.correction_id}" in refs
    assert f"correction:{bad.correction_id}" not in refs

    # /dataset show counts the queue as members made it: one pending, one approved, one rejected.
    await _correct(hz, "Smallest prime?", "1.", "2.")
    shown = await hz.send(slash("dataset", {"name": "corrections"}, subcommand="show", user=ADMIN_MEMBER))
    [embed] = [e for call in shown.followups for e in (call.json or {}).get("embeds", [])] or shown.embeds
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Review queue (this server)"] == "3 corrections: 1 pending, 1 approved, 1 rejected"
    assert fields["Records"].startswith("2 records")  # the approved one: a chat example and a pair


@pytest.mark.asyncio
async def test_two_approvals_policy_needs_a_second_curator(hz: RunningBot) -> None:
    await _grant_curate_to_carol(hz)
    shown = await hz.send(slash("review", {"approvals": 2}, subcommand="settings", user=ADMIN_MEMBER))
    assert "Approvals an item needs: 2" in (shown.content or "")
    item = await _correct(hz, "2+2?", "5", "4")

    first = await _next(hz)
    assert "pending (0 of 2 approvals)" in (first.content or "")
    once = await hz.send(button(f"hz.ra:{item.id}", _message(first), user=ADMIN_MEMBER))
    assert "waits for another curator" in (once.content or "")
    assert (await _item(hz, item.id)).status == "pending"
    assert await _live_examples(hz, item.correction_id) == []

    second = await _next(hz, CAROL)
    text = second.content or ""
    assert "pending (1 of 2 approvals)" in text
    assert f"✅ <@{ADMIN_USER_ID}> approved" in text  # the votes so far
    twice = await hz.send(button(f"hz.ra:{item.id}", _message(second), user=CAROL))
    assert f"You approved #{item.id}" in (twice.content or "")
    assert (await _item(hz, item.id)).status == "approved"
    assert len(await _live_examples(hz, item.correction_id)) == 2


@pytest.mark.asyncio
async def test_a_trusted_role_is_approved_on_arrival(hz: RunningBot) -> None:
    shown = await hz.send(
        slash("review", {"trusted_role": RoleRef(TRUSTED_ROLE_ID, "editors")}, subcommand="settings", user=ADMIN_MEMBER)
    )
    assert f"Trusted roles (approved on arrival): <@&{TRUSTED_ROLE_ID}>" in (shown.content or "")
    trusted = member_payload(user_payload(USER_ID, "alice"), roles=[TRUSTED_ROLE_ID])
    item = await _correct(hz, "Colour of the sky?", "Green.", "Blue.", user=trusted)
    assert item.status == "approved"
    assert len(await _live_examples(hz, item.correction_id)) == 2
    assert "Nothing to review" in ((await _next(hz)).content or "")

    untrusted = await hz.send(
        slash("review", {"untrust_role": RoleRef(TRUSTED_ROLE_ID)}, subcommand="settings", user=ADMIN_MEMBER)
    )
    assert "Trusted roles (approved on arrival): none" in (untrusted.content or "")
    later = await _correct(hz, "Colour of grass?", "Purple.", "Green.", user=trusted)
    assert later.status == "pending"


@pytest.mark.asyncio
async def test_self_approval_is_refused_unless_the_policy_allows_it(hz: RunningBot) -> None:
    item = await _correct(hz, "Fastest land animal?", "The snail.", "The cheetah.", user=ADMIN_MEMBER)
    shown = await _next(hz)
    assert "your own" in (shown.content or "")
    assert _ids(shown) == []
    refused = await hz.send(button(f"hz.ra:{item.id}", _message(shown), user=ADMIN_MEMBER))
    assert refused.ephemeral
    assert "cannot approve what you made yourself" in (refused.content or "")
    assert (await _item(hz, item.id)).status == "pending"
    assert await _votes(hz, item.id) == []

    allowed = await hz.send(slash("review", {"self_approval": True}, subcommand="settings", user=ADMIN_MEMBER))
    assert "Curators may approve what they made: yes" in (allowed.content or "")
    shown = await _next(hz)
    assert f"Review #{item.id}" in (shown.content or "")
    await hz.send(button(f"hz.ra:{item.id}", _message(shown), user=ADMIN_MEMBER))
    assert (await _item(hz, item.id)).status == "approved"


@pytest.mark.asyncio
async def test_forged_presses_change_nothing(hz: RunningBot) -> None:
    item = await _correct(hz, "Speed of light?", "About 300 km/h.", "About 300,000 km/s.")
    shown = await _next(hz)
    # A member without `curate` presses a copied Approve button.
    forged = await hz.send(button(f"hz.ra:{item.id}", _message(shown)))
    assert forged.ephemeral
    assert "`curate` capability" in (forged.content or "")
    refused_next = await hz.send(slash("review", subcommand="next"))
    assert "`curate` capability" in (refused_next.content or "")
    # An administrator of another server replays the id there: it names nothing of theirs.
    elsewhere = await hz.send(
        in_other_guild(button(f"hz.ra:{item.id}", _message(shown), user=ADMIN_MEMBER), OTHER_GUILD_ID)
    )
    assert "no longer in this server's review queue" in (elsewhere.content or "")
    for key in ("hz.rr", "hz.re", "hz.rs"):
        other = await hz.send(
            in_other_guild(button(f"{key}:{item.id}", _message(shown), user=ADMIN_MEMBER), OTHER_GUILD_ID)
        )
        assert other.modal is None
        assert "no longer in this server's review queue" in (other.content or ""), key
    malformed = await hz.send(button("hz.ra:12x", _message(shown), user=ADMIN_MEMBER))
    assert "damaged or out of date" in (malformed.content or "")
    assert (await _item(hz, item.id)).status == "pending"
    assert await _votes(hz, item.id) == []
    assert await _live_examples(hz, item.correction_id) == []


@pytest.mark.asyncio
async def test_edit_approves_the_edited_text(hz: RunningBot) -> None:
    item = await _correct(hz, "Who wrote Hamlet?", "Marlowe.", "Shakespear.")
    shown = await _next(hz)
    opened = await hz.send(button(f"hz.re:{item.id}", _message(shown), user=ADMIN_MEMBER))
    assert opened.modal is not None
    assert opened.modal.input("Corrected reply").value == "Shakespear."
    submitted = await hz.send(
        modal_submit(
            opened.modal.custom_id,
            opened.modal.submission({"Corrected reply": "William Shakespeare."}),
            message=_message(shown),
            user=ADMIN_MEMBER,
        )
    )
    assert f"You edited and approved #{item.id}" in (submitted.content or "")
    assert (await _item(hz, item.id)).status == "approved"
    correction = await hz.services.corrections.get(item.correction_id or 0)
    assert correction is not None
    assert correction.corrected_text == "William Shakespeare."
    live = await _live_examples(hz, item.correction_id)
    assert len(live) == 2
    assert all("William Shakespeare." in (e.preferred or e.messages[-1]["content"]) for e in live)
    assert not any("Shakespear." in (e.preferred or e.messages[-1]["content"]) for e in live)
    [vote] = await _votes(hz, item.id)
    assert vote.edited


@pytest.mark.asyncio
async def test_skip_shows_the_next_item_and_wraps_round(hz: RunningBot) -> None:
    first = await _correct(hz, "q1", "a1", "c1")
    second = await _correct(hz, "q2", "a2", "c2")
    shown = await _next(hz)
    assert f"Review #{first.id}" in (shown.content or "")
    skipped = await hz.send(button(f"hz.rs:{first.id}", _message(shown), user=ADMIN_MEMBER))
    assert skipped.response_type == 7
    assert f"Review #{second.id}" in (skipped.content or "")
    wrapped = await hz.send(button(f"hz.rs:{second.id}", _message(skipped), user=ADMIN_MEMBER))
    assert f"Review #{first.id}" in (wrapped.content or "")
    assert await _votes(hz, first.id) == []


@pytest.mark.asyncio
async def test_a_reply_marked_as_wrong_is_corrected_from_the_queue(hz: RunningBot) -> None:
    message = await _chat(hz, "Tallest mountain?", "Mont Blanc.")
    found = await hz.services.replies.by_message(int(message["id"]), guild_id=GUILD_ID)
    assert found is not None
    reply = found[0]
    async with hz.services.db.session() as session, session.begin():
        flagged = await open_item(
            session,
            kind=ReviewKind.NEEDS_CORRECTION,
            guild_id=GUILD_ID,
            author_id=USER_ID,
            reply_id=reply.id,
            trusted=False,
            examples=lambda _: [],
        )
        flagged_id = flagged.id
    shown = await _next(hz)
    assert "needs a correction" in (shown.content or "")
    assert _ids(shown) == [f"hz.rc:{flagged_id}", f"hz.rr:{flagged_id}", f"hz.rs:{flagged_id}"]
    opened = await hz.send(button(f"hz.rc:{flagged_id}", _message(shown), user=ADMIN_MEMBER))
    assert opened.modal is not None
    assert opened.modal.input("Corrected reply").value == "Mont Blanc."
    saved = await hz.send(opened.modal.submit({"Corrected reply": "Mount Everest."}, user=ADMIN_MEMBER))
    assert "Correction saved" in (saved.content or "")
    assert (await _item(hz, flagged_id)).status == "approved"


# -- another process --------------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def discord() -> AsyncIterator[FakeDiscordREST]:
    async with FakeDiscordREST() as fake:
        yield fake


@pytest.mark.asyncio
async def test_a_review_button_answered_by_another_bot_process(
    bot_settings: Settings, openai_fake: FakeOpenAI, discord: FakeDiscordREST
) -> None:
    async with (
        running_hypotez(bot_settings, openai_fake, rest=discord) as a,
        running_hypotez(bot_settings, openai_fake, rest=discord) as b,
    ):
        item = await _correct(a, "Capital of France?", "Lyon.", "Paris.")
        shown = await _next(a)
        approved = await b.send(button(f"hz.ra:{item.id}", _message(shown), user=ADMIN_MEMBER))
        assert f"You approved #{item.id}" in (approved.content or "")
        assert (await _item(a, item.id)).status == "approved"
        assert len(await _live_examples(a, item.correction_id)) == 2


# -- statistics -------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_review_stats_count_curators_statuses_and_agreement(hz: RunningBot) -> None:
    await _grant_curate_to_carol(hz)
    await hz.send(slash("review", {"approvals": 2}, subcommand="settings", user=ADMIN_MEMBER))
    empty = await hz.send(slash("review", subcommand="stats", user=CAROL))
    assert "No curator has voted yet." in (empty.content or "")
    assert "Approval rate: no item decided yet." in (empty.content or "")

    items = [await _correct(hz, f"question {n}", f"wrong {n}", f"right {n}") for n in range(4)]
    shown = _message(await _next(hz))
    for item in items[:3]:
        await hz.send(button(f"hz.ra:{item.id}", shown, user=ADMIN_MEMBER))
    await hz.send(button(f"hz.ra:{items[0].id}", shown, user=CAROL))
    one = await hz.send(slash("review", subcommand="stats", user=CAROL))
    assert "1 item had more than one reviewer; reviewers agreed on 100 % of pairs." in (one.content or "")

    await hz.send(button(f"hz.ra:{items[1].id}", shown, user=CAROL))
    await hz.send(
        modal_submit(signed_form(hz.app, f"hz.rrm:{items[2].id}", CAROL), {"reason": "Not better."}, user=CAROL)
    )
    assert [(await _item(hz, i.id)).status for i in items] == ["approved", "approved", "rejected", "pending"]

    stats = await hz.send(slash("review", subcommand="stats", user=CAROL))
    text = stats.content or ""
    assert stats.ephemeral
    assert f"<@{ADMIN_USER_ID}>: 3 approved, 0 rejected" in text
    assert f"<@{CAROL_ID}>: 2 approved, 1 rejected" in text
    assert "4 items in all: 1 pending, 2 approved, 1 rejected." in text
    assert "Approval rate: 67 % of decided items." in text
    assert "3 items had more than one reviewer; reviewers agreed on 67 % of pairs." in text
    assert stats.data["allowed_mentions"]["parse"] == []


# -- the review channel -----------------------------------------------------------------------------------------


def _posts(hz: RunningBot) -> list[dict[str, Any]]:
    """The review channel's messages everyone sees (not the ephemeral answers to the buttons pressed there)."""
    return [
        m
        for m in hz.rest.messages.values()
        if int(m["channel_id"]) == REVIEW_CHANNEL_ID and not int(m.get("flags") or 0) & EPHEMERAL
    ]


@pytest.mark.asyncio
async def test_review_channel_posts_carry_the_buttons_and_follow_the_decision(hz: RunningBot) -> None:
    shown = await hz.send(
        slash("review", {"channel": ChannelRef(REVIEW_CHANNEL_ID, "review")}, subcommand="settings", user=ADMIN_MEMBER)
    )
    assert f"Review channel: <#{REVIEW_CHANNEL_ID}>" in (shown.content or "")
    rest, reviews = hz.app.bot.rest, _reviews(hz)

    first = await _correct(hz, "Smallest prime?", "1.", "2.")
    await post_to_review_channel(rest, reviews, first.id)  # what storing a correction does (once)
    await post_to_review_channel(rest, reviews, first.id)
    assert len(_posts(hz)) == 1
    posted = await _item(hz, first.id)
    assert posted.posted_channel_id == REVIEW_CHANNEL_ID
    assert posted.posted_message_id is not None
    post = hz.rest.messages[posted.posted_message_id]
    assert f"Review #{first.id}" in post["content"]
    assert _ids(post) == [f"hz.ra:{first.id}", f"hz.re:{first.id}", f"hz.rr:{first.id}"]  # no Skip in a channel

    # Approved on the post itself: the post shows the outcome, without buttons; the curator is told alone.
    pressed = await hz.send(button(f"hz.ra:{first.id}", post, user=ADMIN_MEMBER))
    assert pressed.response_type == 7
    post = hz.rest.messages[posted.posted_message_id]
    assert "✅ approved" in post["content"]
    assert _ids(post) == []
    assert any(f"You approved #{first.id}" in str((c.json or {}).get("content")) for c in pressed.followups)

    # Rejected from /review next: the post is brought up to date too.
    second = await _correct(hz, "Largest ocean?", "The Atlantic.", "The Pacific.")
    await post_to_review_channel(rest, reviews, second.id)
    assert len(_posts(hz)) == 2
    second_post_id = (await _item(hz, second.id)).posted_message_id
    assert second_post_id is not None
    await hz.send(
        modal_submit(
            signed_form(hz.app, f"hz.rrm:{second.id}", ADMIN_MEMBER), {"reason": "Checked: wrong."}, user=ADMIN_MEMBER
        )
    )
    post = hz.rest.messages[second_post_id]
    assert "❌ rejected: Checked: wrong." in post["content"]
    assert _ids(post) == []

    off = await hz.send(slash("review", {"no_channel": True}, subcommand="settings", user=ADMIN_MEMBER))
    assert "Review channel: none" in (off.content or "")
    third = await _correct(hz, "Hottest planet?", "Mercury.", "Venus.")
    assert not await post_to_review_channel(rest, reviews, third.id)
    assert (await _item(hz, third.id)).posted_message_id is None
    assert len(_posts(hz)) == 2


# -- telling the author ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_author_gets_a_dm_when_opted_in(hz: RunningBot) -> None:
    opted = await hz.send(slash("review", {"dm": True}, subcommand="notify"))
    assert "direct message" in (opted.content or "")
    item = await _correct(hz, "Capital of Canada?", "Toronto.", "Ottawa.")
    shown = await _next(hz)
    await hz.send(button(f"hz.ra:{item.id}", _message(shown), user=ADMIN_MEMBER))
    [opened] = hz.rest.calls_to("POST", "/users/@me/channels")
    assert opened.json == {"recipient_id": str(USER_ID)}
    dm_channel = hz.rest.dm_channels[USER_ID]
    [dm] = hz.rest.calls_to("POST", f"/channels/{dm_channel}/messages")
    assert (dm.json or {})["content"] == (
        f"Your correction of the reply to “Capital of Canada?” was approved by <@{ADMIN_USER_ID}>: "
        "the next model trained here learns from it."
    )
    assert (await _item(hz, item.id)).notified

    # DMs closed: no error, and the decision waits for the member's next command.
    hz.rest.closed_dms.add(USER_ID)
    hz.rest.dm_channels.clear()
    refused = await _correct(hz, "Capital of Brazil?", "Rio.", "São Paulo.")
    await hz.send(
        modal_submit(
            signed_form(hz.app, f"hz.rrm:{refused.id}", ADMIN_MEMBER), {"reason": "It is Brasília."}, user=ADMIN_MEMBER
        )
    )
    assert (await _item(hz, refused.id)).status == "rejected"
    assert [c.status for c in hz.rest.calls_to("POST", "/users/@me/channels")] == [200, 403]
    assert len(hz.rest.calls_to("POST", f"/channels/{dm_channel}/messages")) == 1  # only the first one
    assert not (await _item(hz, refused.id)).notified
    later = await hz.send(slash("review", {"dm": True}, subcommand="notify"))
    [note] = _notes(later)
    assert "“Capital of Brazil?” was not accepted by" in note
    assert note.endswith(": It is Brasília.")
    assert (await _item(hz, refused.id)).notified


def _notes(result: InteractionResult) -> list[str]:
    """The follow-ups of a command that tell the member what curators decided."""
    return [
        str((c.json or {}).get("content"))
        for c in result.followups
        if "decided" in str((c.json or {}).get("content")) and c.method == "POST"
    ]


@pytest.mark.asyncio
async def test_decisions_are_delivered_once_with_the_next_command(hz: RunningBot) -> None:
    item = await _correct(hz, "Capital of Brazil?", "Rio.", "São Paulo.")
    await hz.send(
        modal_submit(
            signed_form(hz.app, f"hz.rrm:{item.id}", ADMIN_MEMBER), {"reason": "It is Brasília."}, user=ADMIN_MEMBER
        )
    )
    assert hz.rest.calls_to("POST", "/users/@me/channels") == []  # not opted in: no DM
    assert not (await _item(hz, item.id)).notified

    # The curator's own commands tell the curator nothing: the decision is the member's news.
    assert _notes(await hz.send(slash("review", subcommand="stats", user=ADMIN_MEMBER))) == []
    later = await hz.send(slash("review", {"dm": False}, subcommand="notify"))
    assert "next time you use a command" in (later.content or "")
    [note] = _notes(later)
    assert note == (
        "A curator decided:\n• Your correction of the reply to “Capital of Brazil?” was not accepted by "
        f"<@{ADMIN_USER_ID}>: It is Brasília."
    )
    [call] = [c for c in later.followups if c.method == "POST"]
    assert int((call.json or {}).get("flags") or 0) & EPHEMERAL
    assert (call.json or {})["allowed_mentions"]["parse"] == []
    assert (await _item(hz, item.id)).notified
    assert _notes(await hz.send(slash("review", {"dm": False}, subcommand="notify"))) == []  # told once


@pytest.mark.asyncio
async def test_an_item_approved_on_arrival_is_no_news(hz: RunningBot) -> None:
    await hz.send(slash("review", {"trusted_role": RoleRef(TRUSTED_ROLE_ID)}, subcommand="settings", user=ADMIN_MEMBER))
    trusted = member_payload(user_payload(USER_ID, "alice"), roles=[TRUSTED_ROLE_ID])
    item = await _correct(hz, "q", "a", "b", user=trusted)
    assert item.status == "approved"
    quiet = await hz.send(slash("review", {"dm": False}, subcommand="notify", user=trusted))
    assert _notes(quiet) == []
    assert (await _item(hz, item.id)).notified  # marked as told: the acknowledgement said it
    assert await _reviews(hz).undelivered(USER_ID) == []
