"""The blind arena end to end: ``/arena start`` on one replica, votes pressed on another, the names shown to each
voter and to everyone once the match closes, refusals (a second vote, another server, a member without the
capability, a closed match), votes through the review queue into the ``arena`` dataset as preference pairs, and
``/arena stats`` (its Elo checked against the votes, recomputed here)."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from sqlalchemy import select, update

from hypotez.storage.models import ArenaMatch, ArenaVote, Dataset, DatasetExample, ReviewItem, ReviewKind
from hypotez.storage.repositories import ReviewRepository
from tests.conftest import CURATOR_ID, approve_pending, running_hypotez
from tests.fakes.discord_rest import FakeDiscordREST
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    GUILD_ID,
    button,
    in_other_guild,
    member_payload,
    said,
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
REVIEW_CHANNEL_ID = 1_100_000_000_000_000_250
TRUSTED_ROLE_ID = 1_100_000_000_000_000_440
VOTER_ROLE_ID = 1_100_000_000_000_000_430
ALICE = member_payload(user_payload(1_100_000_000_000_000_311, "alice"), roles=[VOTER_ROLE_ID])
BOB = member_payload(user_payload(1_100_000_000_000_000_312, "bob"), roles=[VOTER_ROLE_ID])
CAROL = member_payload(user_payload(1_100_000_000_000_000_313, "carol"), roles=[VOTER_ROLE_ID])
DAVE = member_payload(user_payload(1_100_000_000_000_000_314, "dave"), roles=[VOTER_ROLE_ID])
#: A member without the voter role (once the server gives ``feedback`` to that role alone).
EVE = member_payload(user_payload(1_100_000_000_000_000_315, "eve"))

STRONG, WEAK, THIRD = "gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano"
ANSWERS = {STRONG: "Paris is the capital of France.", WEAK: "I think it is Lyon.", THIRD: "Marseille, perhaps."}


def _by_model(messages: list[dict[str, Any]], model: str) -> str:
    del messages
    return ANSWERS[model]


@pytest_asyncio.fixture
async def discord() -> AsyncIterator[FakeDiscordREST]:
    async with FakeDiscordREST() as fake:
        yield fake


@pytest.fixture
def arena_settings(bot_settings: Settings) -> Settings:
    return bot_settings.model_copy(update={"arena_close_after_votes": 3})


async def _start(hz: RunningBot, message: str, *, a: str | None = STRONG, b: str | None = WEAK) -> InteractionResult:
    options: dict[str, str] = {"message": message}
    if a is not None:
        options["model_a"] = a
    if b is not None:
        options["model_b"] = b
    return await hz.send(slash("arena", options, subcommand="start", user=ADMIN_MEMBER))


async def _match(hz: RunningBot, match_id: int) -> ArenaMatch:
    async with hz.services.db.session() as session:
        match = await session.get(ArenaMatch, match_id)
    assert match is not None
    return match


async def _votes(hz: RunningBot, match_id: int) -> list[ArenaVote]:
    async with hz.services.db.session() as session:
        rows = await session.scalars(select(ArenaVote).where(ArenaVote.match_id == match_id).order_by(ArenaVote.id))
        return list(rows.all())


def _vote_ids(message: dict[str, Any]) -> dict[str, str]:
    """The vote buttons of a match message, by the choice their id ends with."""
    ids = [c["custom_id"] for row in message.get("components") or [] for c in row["components"]]
    return {custom_id.rsplit(":", 1)[1]: custom_id for custom_id in ids}


def _shown(message: dict[str, Any]) -> str:
    """Everything a member reads on a message: its text and its embeds."""
    parts = [str(message.get("content") or "")]
    for embed in message.get("embeds") or []:
        parts += [str(embed.get("title") or ""), str(embed.get("description") or "")]
    return "\n".join(parts)


def _side_of(match: ArenaMatch, model: str) -> str:
    return "a" if match.model_a == model else "b"


async def _started(hz: RunningBot, question: str, **models: str | None) -> tuple[ArenaMatch, dict[str, Any]]:
    result = await _start(hz, question, **models)
    message = result.original_message
    assert message is not None, said(result)
    [match_id] = {int(i.split(":")[1]) for i in _vote_ids(message).values()}
    return await _match(hz, match_id), message


# -- the whole flow ---------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_blind_match_from_start_to_preference_pairs_and_stats(
    arena_settings: Settings, openai_fake: FakeOpenAI, discord: FakeDiscordREST
) -> None:
    async with (
        running_hypotez(arena_settings, openai_fake, rest=discord) as a,
        running_hypotez(arena_settings, openai_fake, rest=discord) as b,
    ):
        openai_fake.reply_with(_by_model)
        await a.services.guild_settings.update(GUILD_ID, capability_roles={"feedback": [VOTER_ROLE_ID]})
        await a.app.get(ReviewRepository).set_policy(GUILD_ID, channel_id=REVIEW_CHANNEL_ID)

        # Started on replica A: both models answered, shown as A and B with no names, the sides stored.
        match, message = await _started(a, "Capital of France?")
        shown = _shown(message)
        assert STRONG not in shown
        assert WEAK not in shown
        assert {match.model_a, match.model_b} == {STRONG, WEAK}
        embeds = {e["title"]: e["description"] for e in message["embeds"]}
        assert embeds == {"A": ANSWERS[match.model_a], "B": ANSWERS[match.model_b]}
        assert set(_vote_ids(message)) == {"a", "b", "tie"}
        asked = [r for r in openai_fake.requests if r.path.endswith("/chat/completions")]
        assert sorted(r.json["model"] for r in asked) == sorted([STRONG, WEAK])  # type: ignore[index]
        ids = _vote_ids(message)
        strong = _side_of(match, STRONG)

        # Alice votes for the strong model's side on replica B: she alone is shown the names.
        voted = await b.send(button(ids[strong], message, user=ALICE))
        receipt = said(voted)
        assert f"**A** was `{match.model_a}`, **B** was `{match.model_b}`" in receipt
        assert "once a curator approves it" in receipt
        public = discord.messages[int(message["id"])]
        assert "1 vote so far" in _shown(public)
        assert STRONG not in _shown(public)
        assert WEAK not in _shown(public)

        # Her second press (a changed vote) is refused: the vote is final; nothing changes.
        other = "b" if strong == "a" else "a"
        again = said(await a.send(button(ids[other], message, user=ALICE)))
        assert "You voted already" in again
        assert [(v.voter_id, v.choice) for v in await _votes(a, match.id)] == [(int(ALICE["user"]["id"]), strong)]

        # Eve lacks the capability; an administrator of another server reaches nothing.
        refused = said(await b.send(button(ids["tie"], message, user=EVE)))
        assert "You need the `feedback` capability" in refused
        outsider = said(await b.send(in_other_guild(button(ids[other], message, user=ADMIN_MEMBER), OTHER_GUILD_ID)))
        assert "not one of this server's" in outsider
        assert STRONG not in outsider
        assert WEAK not in outsider
        assert len(await _votes(a, match.id)) == 1

        # Bob calls it a tie (no review item); Carol's vote, the third, closes the match: the names go public.
        tie = said(await a.send(button(ids["tie"], message, user=BOB)))
        assert "A tie makes no training pair" in tie
        closing = said(await b.send(button(ids[strong], message, user=CAROL)))
        assert "The match is closed now" in closing
        public = discord.messages[int(message["id"])]
        assert f"**A** was `{match.model_a}`" in _shown(public)
        assert "Votes: A" in _shown(public)
        counts = re.search(r"Votes: A (\d+) · B (\d+) · tie (\d+)", _shown(public))
        assert counts is not None
        assert int(counts[1 if strong == "a" else 2]) == 2
        assert int(counts[3]) == 1
        assert not public.get("components")
        late = said(await a.send(button(ids[other], message, user=DAVE)))
        assert "This match is closed" in late
        assert len(await _votes(a, match.id)) == 3

        # The two votes for A or B wait in the review queue; the tie made none.
        async with a.services.db.session() as session:
            items = list((await session.scalars(select(ReviewItem).where(ReviewItem.kind == ReviewKind.ARENA))).all())
        assert sorted(i.author_id for i in items) == sorted([int(ALICE["user"]["id"]), int(CAROL["user"]["id"])])
        assert await _pairs(a) == []
        posts = [m for m in discord.messages.values() if int(m["channel_id"]) == REVIEW_CHANNEL_ID]
        assert len(posts) == 2
        assert all("Arena vote" in str(p["content"]) and ANSWERS[STRONG] in str(p["content"]) for p in posts)

        # A curator reads one in /review next and approves it with the button: its pair is in `arena` now.
        shown_item = await a.send(slash("review", subcommand="next", user=ADMIN_MEMBER))
        text = said(shown_item)
        assert "Arena vote" in text
        assert f"Chosen in blind match #{match.id}" in text
        assert ANSWERS[STRONG] in text
        assert ANSWERS[WEAK] in text
        approve = next(c["custom_id"] for row in shown_item.components for c in row["components"]
                       if c["custom_id"].startswith("hz.ra:"))  # fmt: skip
        approved = said(await b.send(button(approve, shown_item.original_message or {}, user=ADMIN_MEMBER)))
        assert "preference pair is in the `arena` dataset now" in approved
        assert await approve_pending(a.app, curator_id=CURATOR_ID) == 1
        [pair] = await _pairs(a)  # two approved votes for the same side make one pair
        assert pair.kind == "preference"
        assert pair.origin == "arena"
        assert pair.preferred == ANSWERS[STRONG]
        assert pair.rejected == ANSWERS[WEAK]
        assert pair.messages[-1] == {"role": "user", "content": "Capital of France?"}
        # The live dataset as curators see it in Discord.
        shown_set = await a.send(slash("dataset", {"name": "arena"}, subcommand="show", user=ADMIN_MEMBER))
        fields = " ".join(f"{f['name']} {f['value']}" for e in shown_set.embeds for f in e.get("fields") or [])
        assert "2 arena votes: 2 approved" in fields
        assert "1 preference pair\nfrom 1 arena vote" in fields
        discord.assert_deadlines_met()


async def _pairs(hz: RunningBot) -> list[DatasetExample]:
    async with hz.services.db.session() as session:
        rows = await session.scalars(
            select(DatasetExample)
            .join(Dataset, Dataset.id == DatasetExample.dataset_id)
            .where(Dataset.guild_id == GUILD_ID, Dataset.name == "arena")
            .order_by(DatasetExample.id)
        )
        return list(rows.all())


# -- stats ------------------------------------------------------------------------------------------------------


def _elo(games: list[tuple[str, str, float]]) -> dict[str, float]:
    """Elo recomputed from scratch: start 1000, K 32, scale 400, games in order (score of the first model)."""
    ratings: dict[str, float] = {}
    for first, second, score in games:
        r1, r2 = ratings.get(first, 1000.0), ratings.get(second, 1000.0)
        expected = 1 / (1 + 10 ** ((r2 - r1) / 400))
        ratings[first] = r1 + 32 * (score - expected)
        ratings[second] = r2 - 32 * (score - expected)
    return ratings


@pytest.mark.asyncio
async def test_stats_replay_the_votes_as_elo_with_a_chart(hz: RunningBot) -> None:
    hz.openai.reply_with(_by_model)
    third = THIRD
    hz.openai.models.append(third)
    voters = [ALICE, BOB, CAROL, DAVE]
    #: (models of the match, the model each voter prefers: None for a tie)
    plan: list[tuple[tuple[str, str], list[str | None]]] = [
        ((STRONG, WEAK), [STRONG, STRONG, None]),
        ((STRONG, third), [third, STRONG]),
        ((WEAK, third), [WEAK, None, WEAK, third]),
    ]
    games: list[tuple[str, str, float]] = []
    for (first, second), preferences in plan:
        match, message = await _started(hz, f"Which is better, {first} or {second}?", a=first, b=second)
        ids = _vote_ids(message)
        for voter, preferred in zip(voters, preferences, strict=False):
            choice = "tie" if preferred is None else _side_of(match, preferred)
            await hz.send(button(ids[choice], message, user=voter))
            score = 0.5 if preferred is None else 1.0 if preferred == match.model_a else 0.0
            games.append((match.model_a, match.model_b, score))
    # A vote a curator rejected no longer counts: Dave's vote for the third model.
    async with hz.services.db.session() as session:
        rejected = await session.scalar(
            select(ArenaVote.review_item_id).where(ArenaVote.voter_id == int(DAVE["user"]["id"]))
        )
    assert rejected is not None
    reviews = hz.app.get(ReviewRepository)
    await reviews.vote(
        rejected, guild_id=GUILD_ID, curator_id=CURATOR_ID, vote="reject", policy=await reviews.policy(GUILD_ID)
    )
    games.pop()

    stats = await hz.send(slash("arena", subcommand="stats", user=BOB))
    text = said(stats)
    expected = _elo(games)
    table = {
        m[0]: m for m in re.findall(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+) %\s+(\d+)$", text, re.MULTILINE)
    }
    assert set(table) == {STRONG, WEAK, third}, text
    for model, (_, matches, wins, losses, ties, rate, elo) in table.items():
        played = [g for g in games if model in g[:2]]
        won = sum(1 for f, s, score in played if (score == 1.0 and f == model) or (score == 0.0 and s == model))
        tied = sum(1 for *_, score in played if score == 0.5)
        assert (int(wins), int(losses), int(ties)) == (won, len(played) - won - tied, tied), model
        assert int(matches) == 2, model
        assert int(rate) == round(100 * won / len(played)), model
        assert int(elo) == round(expected[model]), (model, elo, expected[model])
    ranked = [line.split()[0] for line in text.splitlines() if line.split() and line.split()[0] in table]
    assert ranked == sorted(table, key=lambda m: -expected[m])
    files = [f for call in stats.followups for f in call.files] + stats.files
    assert [f.filename for f in files] == ["arena.png"]
    assert files[0].content.startswith(b"\x89PNG")


# -- edge cases -------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_identical_answers_count_as_a_tie_and_a_match_past_its_time_closes(hz: RunningBot) -> None:
    hz.openai.reply_with("Both say the same.")
    match, message = await _started(hz, "Say something")
    ids = _vote_ids(message)
    receipt = said(await hz.send(button(ids["a"], message, user=ALICE)))
    assert "Both answers were the same text, so your vote counts as a tie" in receipt
    [vote] = await _votes(hz, match.id)
    assert vote.choice == "tie"
    assert vote.review_item_id is None

    async with hz.services.db.session() as session, session.begin():
        await session.execute(
            update(ArenaMatch)
            .where(ArenaMatch.id == match.id)
            .values(closes_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )
    late = said(await hz.send(button(ids["b"], message, user=BOB)))
    assert "This match is closed" in late
    assert len(await _votes(hz, match.id)) == 1
    assert f"**A** was `{match.model_a}`" in _shown(hz.rest.messages[int(message["id"])])


@pytest.mark.asyncio
async def test_default_models_and_refusals_when_starting(hz: RunningBot) -> None:
    hz.openai.reply_with(_by_model)
    # No models named: the channel's model against another this server may use.
    match, _ = await _started(hz, "Hello", a=None, b=None)
    assert {match.model_a, match.model_b} == {STRONG, WEAK}
    same = said(await _start(hz, "Hello", a=STRONG, b=STRONG))
    assert "name the same model" in same
    unknown = said(await _start(hz, "Hello", a=STRONG, b="ft:gpt-4o-mini:another-org:theirs:abc"))
    assert "is not a model this server can use" in unknown
    async with hz.services.db.session() as session:
        assert len(list((await session.scalars(select(ArenaMatch))).all())) == 1
    # A model that fails: no match, and the member is told.
    hz.openai.fail_next(500, path_contains="chat/completions")
    failed = await _start(hz, "Hello again")
    assert "could not answer" in said(failed)
    async with hz.services.db.session() as session:
        assert len(list((await session.scalars(select(ArenaMatch))).all())) == 1
    # Outside a server there is no arena.
    dm = said(await hz.send(slash("arena", {"message": "hi"}, subcommand="start", guild=False)))
    assert "only in a server" in dm


@pytest.mark.asyncio
async def test_both_models_answer_at_once_within_discords_deadline(
    bot_settings: Settings, openai_fake: FakeOpenAI, discord: FakeDiscordREST
) -> None:
    """Each model takes 1.5 s: asked one after the other the match would take 3 s; asked together about 1.5 s.
    The command defers first, so Discord's 3-second deadline holds either way."""
    async with running_hypotez(bot_settings.model_copy(update={"chat_timeout": 10.0}), openai_fake, rest=discord) as hz:
        openai_fake.reply_with(_by_model)
        await hz.services.assistant.model_choices(GUILD_ID)  # the model list cached, as on a running bot
        openai_fake.delay_next(1.5, times=2, path_contains="chat/completions")
        started = time.monotonic()
        match, _ = await _started(hz, "Capital of France?")
        elapsed = time.monotonic() - started
        assert {match.answer_a, match.answer_b} == {ANSWERS[STRONG], ANSWERS[WEAK]}
        assert elapsed < 2.9, elapsed
        discord.assert_deadlines_met()


@pytest.mark.asyncio
async def test_a_trusted_voter_is_approved_on_arrival_and_starting_counts_against_the_chat_cooldown(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    async with running_hypotez(bot_settings.model_copy(update={"cooldown_chat_per_minute": 1}), openai_fake) as hz:
        openai_fake.reply_with(_by_model)
        await hz.app.get(ReviewRepository).set_policy(GUILD_ID, trusted_roles=[TRUSTED_ROLE_ID])
        trusted = member_payload(user_payload(1_100_000_000_000_000_316, "trusty"), roles=[TRUSTED_ROLE_ID])
        match, message = await _started(hz, "Capital of France?")
        weak = _side_of(match, WEAK)
        receipt = said(await hz.send(button(_vote_ids(message)[weak], message, user=trusted)))
        assert "Your role is trusted here" in receipt
        [pair] = await _pairs(hz)
        assert (pair.preferred, pair.rejected) == (ANSWERS[WEAK], ANSWERS[STRONG])  # what they chose, right or not
        again = said(await _start(hz, "And of Spain?"))
        assert "used chat too often just now" in again
        async with hz.services.db.session() as session:
            assert len(list((await session.scalars(select(ArenaMatch))).all())) == 1
