"""``/arena``: blind matches.  Two models answer the same message side by side as **A** and **B**, without their
names; members vote A, B or tie with the buttons; ``/arena stats`` shows each model's record and Elo.

- **Which models:** ``model_a`` and ``model_b`` (offered from the models this server may use); by default the
  channel's model against the server's most recent trained model (else another model it may use).  Which of the
  two is shown as A is drawn at random and stored with the match, so the position tells nothing.
- **Votes:** one per member and match, final once cast: the voter is shown the names with their vote (an ephemeral
  reply), so a second vote would not be blind.  The public message shows how many voted, never who leads, until
  the match closes: after ``arena_close_after_votes`` votes or ``arena_open_hours`` hours, when it shows everyone
  the names and the counts and takes no more votes.  When both answers are the same text, a vote counts as a tie.
- **Training data:** a vote for A or B enters the review queue (curators approve it like a correction); once
  approved, "the chosen answer over the other" is a preference pair in the server's live ``arena`` dataset.  A tie
  makes no pair.  A vote a curator rejected no longer counts in the stats.
- **Who:** starting a match needs ``chat`` (it has two models answer; it counts against the ``/chat`` cooldown),
  voting needs ``feedback`` (a vote rates the answers), the stats ``chat``.  Every press reads the match from the
  database by the id its button carries and refuses a match of another server or channel, so another replica or
  the bot after a restart answers it the same way.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections import Counter
from typing import TYPE_CHECKING, Final

import hikari
import lightbulb

from hypotez.config import Capability, Settings
from hypotez.errors import BackendError, InvalidInputError, NotFoundError
from hypotez.keys import Key, MalformedKeyError, build_key
from hypotez.ml.arena import Game, Standing, draw_sides, standings
from hypotez.ml.assistant import Assistant
from hypotez.ml.charts import arena_chart_png
from hypotez.permissions import Caller
from hypotez.plugins._autocomplete import model_autocomplete
from hypotez.plugins._checks import IN_SERVERS, OUTSIDE_SERVER, require_in_server
from hypotez.plugins._components import ComponentContext, button, button_row, handler
from hypotez.plugins._cooldowns import cooldown
from hypotez.plugins._delivery import NO_MENTIONS
from hypotez.plugins.review import post_to_review_channel
from hypotez.storage.models import ReviewStatus, utcnow
from hypotez.storage.repositories import (
    AlreadyVotedError,
    ArenaRepository,
    AuditLog,
    MatchClosedError,
    RecordedVote,
    ReviewRepository,
)
from hypotez.storage.repositories.arena import ARENA_DATASET, CHOICES

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hypotez.ml.chat import ChatResult
    from hypotez.storage.models import ArenaMatch

__all__ = ["describe_standings", "loader", "pick_models", "render_match"]

_LOGGER = logging.getLogger(__name__)

loader = lightbulb.Loader()

#: How much of each answer the match message shows (two embeds stay within Discord's 6,000 characters).
ANSWER_CLIP: Final = 2000
_QUESTION_CLIP: Final = 300
#: Rows of the stats table shown in the message (the chart shows them all).
_TABLE_ROWS: Final = 20
_SIDES: Final = {"a": "A", "b": "B", "tie": "a tie"}

#: Which model sits on which side: drawn from the system's randomness, so nobody can predict it.
_RNG: Final = random.SystemRandom()


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    note = f"\n… ({len(text):,} characters in all)"
    return text[: limit - len(note)].rstrip() + note


# -- choosing the models ----------------------------------------------------------------------------------------


async def pick_models(
    assistant: Assistant, caller: Caller, model_a: str | None, model_b: str | None
) -> tuple[str, str]:
    """The two models of a match: those named (each one this server may use), the channel's model for one left
    out, and for the other the server's most recent trained model, else another model the server may use."""
    guild_id = caller.guild_id
    if model_a is not None and model_b is not None:
        if model_a == model_b:
            raise InvalidInputError("`model_a` and `model_b` name the same model: a match needs two different ones.")
        for model in (model_a, model_b):
            await assistant.require_model(guild_id, model)
        return model_a, model_b
    active = caller.here.active_model or await assistant.active_model(guild_id, caller.channel_id)
    given = model_a if model_a is not None else model_b
    if given is not None:
        await assistant.require_model(guild_id, given)
        if given != active:
            return (given, active) if model_a is not None else (active, given)
    first = given or active
    trained = sorted(await assistant.registered_models(guild_id), key=lambda m: m.id, reverse=True)
    candidates = [m.name for m in trained] + await assistant.model_choices(guild_id)
    for candidate in candidates:
        if candidate != first:
            return (first, candidate) if model_b is None else (candidate, first)
    raise InvalidInputError(
        f"Only one model is available here (`{first}`), and a match needs two. Name them with `model_a` and "
        "`model_b`, or train one with `/train`."
    )


# -- the match message ------------------------------------------------------------------------------------------


def _status_line(match: ArenaMatch, votes: int, settings: Settings) -> str:
    voted = f"{votes} vote{'' if votes == 1 else 's'} so far"
    left = max(settings.arena_close_after_votes - votes, 1)
    return (
        f"🗳️ {voted} · it closes after {left} more or <t:{int(match.closes_at.timestamp())}:R>, and then shows "
        "everyone which model was which."
    )


def render_match(
    match: ArenaMatch, counts: Counter[str], settings: Settings
) -> tuple[str, list[hikari.Embed], list[hikari.api.MessageActionRowBuilder]]:
    """The public message of a match: the question, the two answers as A and B, and either the vote buttons and
    how many voted (open) or the names and the counts (closed)."""
    question = "\n".join(f"> {line}" for line in _clip(match.user_text, _QUESTION_CLIP).splitlines()) or "> …"
    votes = sum(counts.values())
    closed = match.closed_at is not None
    if closed:
        head = f"**Blind arena #{match.id}** · closed\n{question}"
        tail = (
            f"**A** was `{match.model_a}` · **B** was `{match.model_b}`\n"
            f"Votes: A {counts['a']} · B {counts['b']} · tie {counts['tie']}"
        )
    else:
        head = f"**Blind arena #{match.id}** · which answer is better?\n{question}"
        tail = (
            "Vote below: you are shown the names with your vote (only you), everyone once the match closes.\n"
            + _status_line(match, votes, settings)
        )
    embeds = [
        hikari.Embed(
            title=f"A{f' · {match.model_a}' if closed else ''}"[:256],
            description=_clip(match.answer_a, ANSWER_CLIP) or "(no answer)",
            color=hikari.Color(0x5865F2),
        ),
        hikari.Embed(
            title=f"B{f' · {match.model_b}' if closed else ''}"[:256],
            description=_clip(match.answer_b, ANSWER_CLIP) or "(no answer)",
            color=hikari.Color(0xEB459E),
        ),
    ]
    rows: list[hikari.api.MessageActionRowBuilder] = []
    if not closed:
        rows.append(
            button_row(
                button(build_key(Key.ARENA_VOTE, match.id, "a"), label="A is better", style=hikari.ButtonStyle.PRIMARY),
                button(build_key(Key.ARENA_VOTE, match.id, "tie"), label="Tie"),
                button(build_key(Key.ARENA_VOTE, match.id, "b"), label="B is better", style=hikari.ButtonStyle.PRIMARY),
            )
        )
    return f"{head}\n{tail}"[:2000], embeds, rows


async def _counts(arena: ArenaRepository, match_id: int) -> Counter[str]:
    return Counter(v.choice for v in await arena.votes(match_id))


async def _refresh_message(
    rest: hikari.api.RESTClient, arena: ArenaRepository, match: ArenaMatch, settings: Settings
) -> None:
    """Show a match's public message as it now stands (closed: with its names)."""
    if match.message_id is None:
        return
    content, embeds, rows = render_match(match, await _counts(arena, match.id), settings)
    try:
        await rest.edit_message(
            match.channel_id, match.message_id, content, embeds=embeds, components=rows, **NO_MENTIONS
        )
    except (hikari.ForbiddenError, hikari.NotFoundError) as exc:
        _LOGGER.info("arena match %d: its message is gone: %s", match.id, exc)


def _names(match: ArenaMatch) -> str:
    return f"**A** was `{match.model_a}`, **B** was `{match.model_b}`."


def _receipt(recorded: RecordedVote) -> str:
    """What the voter is told: their vote, the names, and what becomes of the vote."""
    vote, item = recorded.vote, recorded.item
    lines = [f"You voted **{_SIDES[vote.choice]}** on match #{recorded.match.id}. {_names(recorded.match)}"]
    if recorded.same_answers:
        lines.append("Both answers were the same text, so your vote counts as a tie.")
    if item is None:
        lines.append("A tie makes no training pair; it counts in `/arena stats`.")
    elif item.status == ReviewStatus.APPROVED:
        lines.append(f"Your role is trusted here, so its preference pair is in the `{ARENA_DATASET}` dataset now.")
    else:
        lines.append("It becomes a preference pair for training once a curator approves it.")
    lines.append(
        "The match is closed now: everyone sees the names."
        if recorded.closed_now
        else "The others see the names when the match closes. A vote is final."
    )
    return "\n".join(lines)


# -- the commands -----------------------------------------------------------------------------------------------

arena_group = lightbulb.Group(
    "arena", "Blind matches: two models answer side by side without names, members vote", **IN_SERVERS
)


def _answered(results: Sequence[ChatResult | BaseException]) -> tuple[str, str]:
    answers: list[str] = []
    for result in results:
        if isinstance(result, BaseException):
            _LOGGER.warning("arena: a model could not answer: %s", result)
            raise BackendError(
                "One of the two models could not answer just now, so no match was started. Try again in a moment, "
                "or name other models."
            ) from result
        answers.append(result.content)
    return answers[0], answers[1]


@arena_group.register
class ArenaStart(
    lightbulb.SlashCommand,
    name="start",
    description="Two models answer your message side by side without their names; members vote",
    hooks=[require_in_server(Capability.CHAT), cooldown("chat")],
):
    message = lightbulb.string("message", "What both models answer", min_length=1, max_length=4000)
    model_a = lightbulb.string(
        "model_a", "One model (default: this channel's)", default=None, autocomplete=model_autocomplete, max_length=300
    )
    model_b = lightbulb.string(
        "model_b",
        "The other (default: this server's newest trained model, else another)",
        default=None,
        autocomplete=model_autocomplete,
        max_length=300,
    )

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        settings: Settings,
        assistant: Assistant,
        arena: ArenaRepository,
        audit: AuditLog,
    ) -> None:
        if caller.guild_id is None:  # the hook refuses it first
            raise InvalidInputError(OUTSIDE_SERVER)
        guild_id = caller.guild_id
        await ctx.defer()
        try:
            first, second = await pick_models(assistant, caller, self.model_a, self.model_b)
            shown_a, shown_b = draw_sides(first, second, _RNG)
            prepared = [
                await assistant.prepare(
                    self.message,
                    guild_id=guild_id,
                    channel_id=caller.channel_id,
                    author_id=caller.user_id,
                    model=model,
                    here=caller.here,
                )
                for model in (shown_a, shown_b)
            ]
            # Both at once: the slower model sets the wait, not the sum of the two.
            results = await asyncio.gather(*(assistant.answer(p) for p in prepared), return_exceptions=True)
            answer_a, answer_b = _answered(results)
            match = await arena.start(
                guild_id=guild_id,
                channel_id=caller.channel_id,
                author_id=caller.user_id,
                prompt_messages=[dict(m) for m in prepared[0].messages],
                user_text=self.message,
                model_a=shown_a,
                model_b=shown_b,
                answer_a=answer_a,
                answer_b=answer_b,
                closes_at=utcnow() + dt.timedelta(hours=settings.arena_open_hours),
            )
        except Exception:
            # The public "thinking…" placeholder goes; the member alone reads why (the error handler).
            await ctx.interaction.delete_initial_response()
            raise
        content, embeds, rows = render_match(match, Counter(), settings)
        message = await ctx.interaction.edit_initial_response(content, embeds=embeds, components=rows, **NO_MENTIONS)
        await arena.set_message(match.id, int(message.id))
        await audit.record(
            "arena.start",
            guild_id=guild_id,
            actor_id=caller.user_id,
            target=f"arena:{match.id}",
            details={"model_a": shown_a, "model_b": shown_b},
        )


def describe_standings(table: Sequence[Standing], *, matches: int, votes: int) -> str:
    """``/arena stats`` as a table: each model's matches, wins, losses, ties, win rate and Elo, best first."""
    width = min(32, max(5, *(len(s.model) for s in table)))
    lines = [f"{'model':<{width}} matches  wins  losses  ties  win rate   Elo"]
    for s in table[:_TABLE_ROWS]:
        name = s.model if len(s.model) <= width else s.model[: width - 1] + "…"
        lines.append(
            f"{name:<{width}} {s.matches:>7} {s.wins:>5} {s.losses:>7} {s.ties:>5} {s.win_rate * 100:>8.0f} % "
            f"{s.elo:>5.0f}"
        )
    more = f"\n… and {len(table) - _TABLE_ROWS} more models (all in the chart)." if len(table) > _TABLE_ROWS else ""
    return (
        f"**Blind arena in this server** · {matches} match{'' if matches == 1 else 'es'}, "
        f"{votes} vote{'' if votes == 1 else 's'} counted (votes a curator rejected are not)\n"
        "```\n" + "\n".join(lines) + "\n```" + more + "\nElo: everyone starts at 1000, K = 32, votes replayed in order."
    )[:2000]


@arena_group.register
class ArenaStats(
    lightbulb.SlashCommand,
    name="stats",
    description="Each model's wins, losses, ties, win rate and Elo in this server's arena",
    hooks=[require_in_server(Capability.CHAT)],
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, arena: ArenaRepository) -> None:
        if caller.guild_id is None:
            raise InvalidInputError(OUTSIDE_SERVER)
        await ctx.defer(ephemeral=True)
        games = await arena.games(caller.guild_id)
        table = standings(Game(a, b, choice, match_id) for match_id, a, b, choice in games)
        if not table:
            await ctx.respond("No votes yet in this server's arena: start a match with `/arena start`.", ephemeral=True)
            return
        text = describe_standings(table, matches=len({g[0] for g in games}), votes=len(games))
        rows = [(s.model, s.elo, s.wins, s.ties, s.losses) for s in table]
        chart = await asyncio.to_thread(arena_chart_png, rows, title="Blind arena: Elo and votes")
        await ctx.respond(text, attachment=hikari.Bytes(chart, "arena.png"), ephemeral=True, **NO_MENTIONS)


loader.command(arena_group)


# -- the buttons ------------------------------------------------------------------------------------------------


@handler(loader, Key.ARENA_VOTE, capability=Capability.FEEDBACK, arity=(2,))
async def vote(
    ctx: ComponentContext, caller: Caller, settings: Settings, arena: ArenaRepository, reviews: ReviewRepository
) -> None:
    """A/B/tie on a match: recorded once per member, the names shown to them, the public message brought up to
    date (closed: with the names), a vote for A or B put in the review queue."""
    match_id = ctx.key.int_arg(0)
    choice = ctx.key.args[1]
    if choice not in CHOICES:
        raise MalformedKeyError(ctx.interaction.custom_id)
    if caller.guild_id is None:
        raise InvalidInputError(OUTSIDE_SERVER)
    match = await arena.get(match_id)
    if match is None or match.guild_id != caller.guild_id or match.channel_id != caller.channel_id:
        raise NotFoundError("arena match", match_id, "That match is not one of this server's.")
    policy = await reviews.policy(caller.guild_id)
    rest = ctx.client.rest
    try:
        recorded = await arena.vote(
            match_id,
            guild_id=caller.guild_id,
            voter_id=caller.user_id,
            choice=choice,
            trusted=policy.trusts(caller.role_ids),
            close_after=settings.arena_close_after_votes,
        )
    except AlreadyVotedError as exc:
        await ctx.respond(f"{exc.user_message}\n{_names(match)}", ephemeral=True, **NO_MENTIONS)
        return
    except MatchClosedError as exc:
        closed = await arena.get(match_id) if exc.closed_now else None
        if closed is not None:  # past its time: its message shows the names now
            await _refresh_message(rest, arena, closed, settings)
        raise
    on_message = match.message_id is None or int(ctx.message.id) == match.message_id
    if on_message:
        content, embeds, rows = render_match(recorded.match, await _counts(arena, match_id), settings)
        await ctx.respond(content, embeds=embeds, components=rows, edit=True, **NO_MENTIONS)
        await ctx.respond(_receipt(recorded), ephemeral=True, **NO_MENTIONS)
    else:
        await ctx.respond(_receipt(recorded), ephemeral=True, **NO_MENTIONS)
        await _refresh_message(rest, arena, recorded.match, settings)
    if recorded.item is not None and recorded.item.status == ReviewStatus.PENDING:
        await post_to_review_channel(rest, reviews, recorded.item.id)
