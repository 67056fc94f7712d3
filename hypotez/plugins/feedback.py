"""Feedback: 👍 / 👎 under every reply, ``/feedback send`` (a 1-5 rating with a comment, about one reply or in
general), **Rate this reply**, ``/feedback list`` (what members said, page by page, with **Needs a correction**
for low-rated replies nobody corrected) and ``/feedback stats``.

Ratings of replies enter the server's review queue like corrections: they count once a curator approves them
(at once for a member holding a trusted role)."""

from __future__ import annotations

import datetime as dt
import hashlib

import hikari
import lightbulb

from hypotez.config import Capability
from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.keys import Key, ModalSigner, ParsedKey, build_key
from hypotez.ml.chat import model_label
from hypotez.permissions import Caller
from hypotez.plugins._autocomplete import allowed, bounded, choices, matching
from hypotez.plugins._checks import EVERYWHERE, OUTSIDE_SERVER, require, require_in_server
from hypotez.plugins._components import (
    ComponentContext,
    ModalContext,
    button,
    button_row,
    handler,
    open_modal,
    text_input,
)
from hypotez.plugins._replies import (
    find_reply,
    invite_correction_row,
    owned_reply,
    parse_message_ref,
    recent_replies_autocomplete,
)
from hypotez.plugins.review import post_to_review_channel
from hypotez.storage.models import BotReply, utcnow
from hypotez.storage.repositories import AuditLog, FeedbackRepository, ReplyRepository, ReviewRepository
from hypotez.storage.repositories.feedback import FeedbackEntry, FeedbackKindFilter, FeedbackPage, RatingFilter

loader = lightbulb.Loader()

_RATING = "rating"
_COMMENT = "comment"


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 rating``, ``2 ratings``."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


async def _trusted(reviews: ReviewRepository, reply: BotReply | None, caller: Caller) -> bool:
    """Whether the caller's rating of ``reply`` is approved on arrival (a trusted role of the reply's server)."""
    if reply is None or reply.guild_id is None:
        return False
    return (await reviews.policy(reply.guild_id)).trusts(caller.role_ids)


def _fate(reply: BotReply, *, trusted: bool) -> str:
    """What becomes of a rating of ``reply``, in plain words."""
    if reply.guild_id is None:
        return "It is kept with the conversation; ratings made in direct messages are not used for training."
    if trusted:
        return "Your role is trusted here, so it counts right away."
    return "It counts once a curator approves it."


async def _rate(
    ctx: ComponentContext,
    caller: Caller,
    replies: ReplyRepository,
    feedback: FeedbackRepository,
    reviews: ReviewRepository,
    *,
    up: bool,
) -> None:
    reply, _ = await find_reply(replies, int(ctx.message.id), caller)
    trusted = await _trusted(reviews, reply, caller)
    await feedback.rate(reply, author_id=caller.user_id, up=up, trusted=trusted)
    fate = _fate(reply, trusted=trusted)
    if up:
        await ctx.respond(f"Thanks for the 👍. {fate}", ephemeral=True)
        return
    await ctx.respond(
        f"Thanks for the 👎. {fate} Would you correct the reply? Your correction teaches the next model.",
        components=[invite_correction_row(reply.id)],
        ephemeral=True,
    )


@handler(loader, Key.RATE_UP, capability=Capability.FEEDBACK)
async def thumbs_up(
    ctx: ComponentContext,
    caller: Caller,
    replies: ReplyRepository,
    feedback: FeedbackRepository,
    reviews: ReviewRepository,
) -> None:
    await _rate(ctx, caller, replies, feedback, reviews, up=True)


@handler(loader, Key.RATE_DOWN, capability=Capability.FEEDBACK)
async def thumbs_down(
    ctx: ComponentContext,
    caller: Caller,
    replies: ReplyRepository,
    feedback: FeedbackRepository,
    reviews: ReviewRepository,
) -> None:
    await _rate(ctx, caller, replies, feedback, reviews, up=False)


def feedback_modal(reply: BotReply | None) -> tuple[str, str, list[hikari.api.ComponentBuilder]]:
    """``(title, custom_id, rows)`` of the rating box, about ``reply`` or general (``0`` in the id)."""
    rows: list[hikari.api.ComponentBuilder] = [
        text_input(_RATING, "Rating from 1 (bad) to 5 (great)", placeholder="5", min_length=1, max_length=1),
        text_input(_COMMENT, "What was good or wrong?", paragraph=True, required=False, max_length=4000),
    ]
    title = "Feedback on this reply" if reply is not None else "Feedback"
    return title, build_key(Key.FEEDBACK_MODAL, reply.id if reply is not None else 0), rows


@handler(loader, Key.FEEDBACK_MODAL, capability=Capability.FEEDBACK, arity=(1,))
async def submit_feedback(
    ctx: ModalContext,
    caller: Caller,
    replies: ReplyRepository,
    feedback: FeedbackRepository,
    reviews: ReviewRepository,
) -> None:
    reply_id = ctx.key.int_arg()
    reply = await owned_reply(replies, reply_id, caller) if reply_id else None
    raw = ctx.value(_RATING).strip()
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 5:
        raise InvalidInputError(f"The rating must be a whole number from 1 to 5, not “{raw[:20]}”. Nothing was stored.")
    trusted = await _trusted(reviews, reply, caller)
    await feedback.add_rating(
        author_id=caller.user_id,
        guild_id=caller.guild_id,
        channel_id=caller.channel_id,
        rating=int(raw),
        comment=ctx.value(_COMMENT).strip() or None,
        reply=reply,
        trusted=trusted,
    )
    if reply is not None:
        fate = " " + _fate(reply, trusted=trusted)
    elif caller.guild_id is not None:
        fate = " The server's curators read it."
    else:
        fate = ""
    await ctx.respond(f"Thanks! Feedback stored ({raw}/5).{fate}", ephemeral=True)


feedback = lightbulb.Group("feedback", "Tell us how the bot is doing", **EVERYWHERE)


@feedback.register
class FeedbackSend(
    lightbulb.SlashCommand,
    name="send",
    description="Rate the bot (1-5) with a comment, about one reply or in general",
    hooks=[require(Capability.FEEDBACK)],
):
    message_id = lightbulb.string(
        "message_id",
        "A reply's message id or link (default: general feedback)",
        default=None,
        autocomplete=recent_replies_autocomplete(Capability.FEEDBACK),
        max_length=200,
    )

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, replies: ReplyRepository, signer: ModalSigner
    ) -> None:
        reply = None
        if self.message_id is not None:
            reply, _ = await find_reply(replies, parse_message_ref(self.message_id), caller)
        await open_modal(ctx, signer, *feedback_modal(reply))


@feedback.register
class FeedbackStats(
    lightbulb.SlashCommand,
    name="stats",
    description="Ratings and corrections per model, and general feedback",
    hooks=[require(Capability.CURATE)],
):
    days = lightbulb.integer("days", "Period in days (default 30)", default=30, min_value=1, max_value=3650)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, feedback_repo: FeedbackRepository) -> None:
        since = utcnow() - dt.timedelta(days=self.days)
        stats = await feedback_repo.stats(caller.guild_id, since=since)
        general = await feedback_repo.general_stats(caller.guild_id, since=since)
        unanswered = await feedback_repo.unanswered_stats(caller.guild_id, since=since)
        if not stats and not general.ratings and not unanswered.failed:
            await ctx.respond(f"No feedback in the last {plural(self.days, 'day')}.", ephemeral=True)
            return
        lines: list[str] = []
        if general.ratings:
            mean = f"{general.mean_rating:.1f}/5" if general.mean_rating is not None else "—"
            lines.append(f"General feedback (not about a reply): {plural(general.ratings, 'rating')}, mean {mean}")
        if unanswered.failed:
            made = [plural(unanswered.ratings, "rating"), plural(unanswered.corrections, "correction")]
            lines.append(
                f"The model service failed to answer {plural(unanswered.failed, 'question')}; "
                f"the {' and '.join(made)} made on those replies are not counted per model."
            )
        embed = hikari.Embed(title=f"Feedback, last {plural(self.days, 'day')}", description="\n".join(lines) or None)
        for s in stats[:25]:
            approval = f"{s.approval:.0%}" if s.approval is not None else "—"
            mean = f" (mean {s.mean_rating:.1f}/5)" if s.mean_rating is not None else ""
            value = (
                f"👍 {s.thumbs_up} · 👎 {s.thumbs_down} · approval {approval}\n"
                f"{plural(s.ratings, 'rating')}{mean} · {plural(s.corrections, 'correction')}"
            )
            if s.empty_answers:
                value += f" · {plural(s.empty_answers, 'empty answer')}"
            embed.add_field(model_label(s.model)[:256], value)  # a model directory by its name, never its path
        await ctx.respond(embed=embed, ephemeral=True)


# -- /feedback list ---------------------------------------------------------------------------------------------

PAGE_SIZE = 10
_COMMENT_CHARS = 200
_RATINGS = list(RatingFilter)
_KINDS = list(FeedbackKindFilter)
_RATING_CHOICES = [
    lightbulb.Choice("👎 or 1-2 of 5 (low)", RatingFilter.LOW.value),
    lightbulb.Choice("👍 or 4-5 of 5 (high)", RatingFilter.HIGH.value),
    lightbulb.Choice("👍", RatingFilter.UP.value),
    lightbulb.Choice("👎", RatingFilter.DOWN.value),
    *(lightbulb.Choice(f"{n} of 5", str(n)) for n in range(1, 6)),
]
_KIND_CHOICES = [
    lightbulb.Choice("👍 / 👎 on replies", FeedbackKindFilter.THUMBS.value),
    lightbulb.Choice("1-5 ratings", FeedbackKindFilter.RATINGS.value),
    lightbulb.Choice("general feedback (not about a reply)", FeedbackKindFilter.GENERAL.value),
    lightbulb.Choice("with a comment", FeedbackKindFilter.COMMENTS.value),
]
_RATING_WORDS = {
    RatingFilter.LOW: "low ratings",
    RatingFilter.HIGH: "high ratings",
    RatingFilter.UP: "👍",
    RatingFilter.DOWN: "👎",
}
_KIND_WORDS = {
    FeedbackKindFilter.THUMBS: "👍 / 👎",
    FeedbackKindFilter.RATINGS: "1-5 ratings",
    FeedbackKindFilter.GENERAL: "general feedback",
    FeedbackKindFilter.COMMENTS: "with a comment",
}


def model_token(model: str | None) -> int:
    """A model name as a custom id argument (names hold ``:``, and can be long): a 48-bit hash, ``0`` for none.
    The list's buttons find the name again among the server's feedback."""
    if model is None:
        return 0
    return int(hashlib.sha256(model.encode()).hexdigest()[:12], 16) + 1


def _when(moment: dt.datetime) -> str:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    return f"<t:{int(aware.timestamp())}:R>"


def _line(number: int, entry: FeedbackEntry, guild_id: int) -> str:
    fb = entry.feedback
    score = ("👍" if fb.rating > 0 else "👎") if fb.kind == "thumbs" else f"{fb.rating}/5"
    parts = [f"**{number}.** {score}"]
    if fb.comment:
        comment = " ".join(fb.comment.split())
        if len(comment) > _COMMENT_CHARS:
            comment = comment[: _COMMENT_CHARS - 1].rstrip() + "…"
        parts.append(f"“{comment}”")
    parts.append(f"<@{fb.author_id}> {_when(fb.created_at)}")
    if fb.reply_id is None:
        parts.append("general feedback, not about a reply")
    elif entry.reply_message_id is None or entry.reply_channel_id is None:
        parts.append("on a reply since removed")
    else:
        about = (
            f"[the reply](https://discord.com/channels/{guild_id}/{entry.reply_channel_id}/{entry.reply_message_id})"
        )
        if entry.reply_outcome == "empty":
            about += " (the model gave no answer)"
        elif entry.reply_outcome == "failed":
            about += " (the model service failed)"
        if fb.model:
            about += f" by `{model_label(fb.model)[:60]}`"
        parts.append(about)
    if entry.corrected:
        parts.append("corrected")
    elif entry.sent_for_correction:
        parts.append("in the review queue for a correction")
    return " · ".join(parts)


def _page_key(page: int, days: int, rating: RatingFilter, kind: FeedbackKindFilter, model: str | None) -> str:
    return build_key(Key.FEEDBACK_PAGE, page, days, _RATINGS.index(rating), _KINDS.index(kind), model_token(model))


def render_page(
    found: FeedbackPage,
    *,
    guild_id: int,
    page: int,
    days: int,
    rating: RatingFilter,
    kind: FeedbackKindFilter,
    model: str | None,
) -> tuple[hikari.Embed, list[hikari.api.ComponentBuilder]]:
    """One page of ``/feedback list``: the lines, **Needs a correction** for each low-rated reply nobody
    corrected, and Previous / Next carrying the page and the filters."""
    pages = max(1, -(-found.total // PAGE_SIZE))
    filters = [f"last {plural(days, 'day')}"]
    if model is not None:
        filters.append(f"`{model[:80]}`")
    if rating in _RATING_WORDS:
        filters.append(_RATING_WORDS[rating])
    elif rating != RatingFilter.ANY:
        filters.append(f"{rating.value} of 5")
    if kind != FeedbackKindFilter.ANY:
        filters.append(_KIND_WORDS[kind])
    first = page * PAGE_SIZE
    lines = [_line(first + i + 1, entry, guild_id) for i, entry in enumerate(found.entries)]
    embed = hikari.Embed(
        title=f"Feedback: {plural(found.total, 'item')}",
        description="\n".join(lines) if lines else "Nothing matches these filters.",
    )
    embed.set_footer(f"Page {page + 1} of {pages} · {', '.join(filters)} · newest first")
    needing: list[hikari.api.InteractiveButtonBuilder] = []
    offered: set[int] = set()
    for i, entry in enumerate(found.entries):
        reply_id = entry.feedback.reply_id
        if reply_id is None or not entry.needs_correction or reply_id in offered:
            continue
        offered.add(reply_id)
        needing.append(button(build_key(Key.FEEDBACK_NEEDS, reply_id), label=f"Needs a correction: {first + i + 1}"))
    rows: list[hikari.api.ComponentBuilder] = [button_row(*needing[i : i + 5]) for i in range(0, len(needing), 5)]
    moves: list[hikari.api.InteractiveButtonBuilder] = []
    if page > 0:
        moves.append(button(_page_key(page - 1, days, rating, kind, model), label="Previous", emoji="◀️"))
    if page + 1 < pages:
        moves.append(button(_page_key(page + 1, days, rating, kind, model), label="Next", emoji="▶️"))
    if moves:
        rows.append(button_row(*moves))
    return embed, rows


async def _show_page(
    feedback_repo: FeedbackRepository,
    guild_id: int,
    *,
    page: int,
    days: int,
    rating: RatingFilter,
    kind: FeedbackKindFilter,
    model: str | None,
) -> tuple[hikari.Embed, list[hikari.api.ComponentBuilder]]:
    since = utcnow() - dt.timedelta(days=days)

    async def fetch(at: int) -> FeedbackPage:
        return await feedback_repo.page(
            guild_id, since=since, model=model, rating=rating, kind=kind, offset=at * PAGE_SIZE, limit=PAGE_SIZE
        )

    found = await fetch(page)
    if not found.entries and page > 0:  # feedback went away since the button was made: the last page instead
        page = max(0, -(-found.total // PAGE_SIZE) - 1)
        found = await fetch(page)
    return render_page(found, guild_id=guild_id, page=page, days=days, rating=rating, kind=kind, model=model)


@bounded
async def feedback_model_autocomplete(
    ctx: lightbulb.AutocompleteContext[str],
    caller: Caller = lightbulb.di.INJECTED,
    feedback_repo: FeedbackRepository = lightbulb.di.INJECTED,
) -> None:
    """The models this server's feedback is about (nothing outside servers or without ``curate``)."""
    if not allowed(caller, Capability.CURATE):
        await ctx.respond([])
        return
    assert caller.guild_id is not None
    await ctx.respond(choices(matching(await feedback_repo.models(caller.guild_id), ctx.focused.value)))


@feedback.register
class FeedbackList(
    lightbulb.SlashCommand,
    name="list",
    description="What members said: comments and ratings, newest first (server only)",
    hooks=[require_in_server(Capability.CURATE)],
):
    days = lightbulb.integer("days", "Period in days (default 30)", default=30, min_value=1, max_value=3650)
    model = lightbulb.string(
        "model", "Only feedback on this model's replies", default=None, autocomplete=feedback_model_autocomplete
    )
    rating = lightbulb.string("rating", "Only these ratings", default=None, choices=_RATING_CHOICES)
    kind = lightbulb.string("kind", "Only this kind of feedback", default=None, choices=_KIND_CHOICES)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, feedback_repo: FeedbackRepository) -> None:
        if caller.guild_id is None:  # /feedback is offered everywhere; its list belongs to a server
            raise InvalidInputError(OUTSIDE_SERVER)
        try:
            rating = RatingFilter(self.rating or RatingFilter.ANY.value)
            kind = FeedbackKindFilter(self.kind or FeedbackKindFilter.ANY.value)
        except ValueError:
            raise InvalidInputError("Pick the rating and the kind from the lists offered.") from None
        model = (self.model or "").strip() or None
        await ctx.defer(ephemeral=True)  # it reads the server's feedback: answer Discord first
        embed, rows = await _show_page(
            feedback_repo, caller.guild_id, page=0, days=self.days, rating=rating, kind=kind, model=model
        )
        await ctx.respond(embed=embed, components=rows, ephemeral=True, user_mentions=False)


def _page_args(key: ParsedKey) -> tuple[int, int, RatingFilter, FeedbackKindFilter, int]:
    """``(page, days, rating, kind, model token)`` from a page button's id, refused unless each is one we build."""
    page, days, rating, kind, token = (key.int_arg(i) for i in range(5))
    if not (page < 10_000 and 1 <= days <= 3650 and rating < len(_RATINGS) and kind < len(_KINDS)):
        raise InvalidInputError("This button is damaged or out of date. Run `/feedback list` again.")
    return page, days, _RATINGS[rating], _KINDS[kind], token


@handler(loader, Key.FEEDBACK_PAGE, capability=Capability.CURATE, arity=(5,))
async def feedback_page(ctx: ComponentContext, caller: Caller, feedback_repo: FeedbackRepository) -> None:
    """Previous / Next: the page and the filters are in the id; the caller's server is the one listed."""
    if caller.guild_id is None:
        raise InvalidInputError(OUTSIDE_SERVER)
    page, days, rating, kind, token = _page_args(ctx.key)
    model: str | None = None
    if token:
        model = next((m for m in await feedback_repo.models(caller.guild_id) if model_token(m) == token), None)
        if model is None:
            raise NotFoundError(
                "model", token, "No feedback here is about the model this list showed any more. Run `/feedback list`."
            )
    embed, rows = await _show_page(
        feedback_repo, caller.guild_id, page=page, days=days, rating=rating, kind=kind, model=model
    )
    await ctx.respond(embed=embed, components=rows, edit=True, user_mentions=False)


@handler(loader, Key.FEEDBACK_NEEDS, capability=Capability.CURATE, arity=(1,))
async def needs_correction(
    ctx: ComponentContext,
    caller: Caller,
    replies: ReplyRepository,
    feedback_repo: FeedbackRepository,
    reviews: ReviewRepository,
    audit: AuditLog,
) -> None:
    """Send a low-rated reply nobody corrected to the review queue (and its review channel, where the server has
    one), for a curator to write its answer."""
    if caller.guild_id is None:
        raise InvalidInputError(OUTSIDE_SERVER)
    reply = await owned_reply(replies, ctx.key.int_arg(), caller)
    item, created = await feedback_repo.request_correction(reply)
    if not created:
        await ctx.respond("This reply is already in the review queue as needing a correction.", ephemeral=True)
        return
    await audit.record(
        "review.needs_correction",
        guild_id=caller.guild_id,
        actor_id=caller.user_id,
        target=f"reply:{reply.id}",
        details={"review_item": item.id},
    )
    await post_to_review_channel(ctx.client.rest, reviews, item.id)
    await ctx.respond(
        "Sent to the review queue: a curator writes the answer this reply should have given.", ephemeral=True
    )


loader.command(feedback)


@loader.command
class RateThisReply(
    lightbulb.MessageCommand, name="Rate this reply", hooks=[require(Capability.FEEDBACK)], **EVERYWHERE
):
    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, replies: ReplyRepository, signer: ModalSigner
    ) -> None:
        reply, _ = await find_reply(replies, int(self.target.id), caller)
        await open_modal(ctx, signer, *feedback_modal(reply))
