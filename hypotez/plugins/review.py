"""The review queue as curators work it: ``/review next`` (one item at a time, with Approve / Edit / Reject / Skip,
or Correct it / Reject for a reply flagged as wrong), the review channel's posts with the same buttons,
``/review settings``, ``/review stats``, and ``/review notify`` for members who want a direct message when a
curator decides on what they made.

Every button and form carries the review item's id and nothing else: whichever process answers it reads the
item, checks that it belongs to the caller's server, and records the vote (:meth:`ReviewRepository.vote`
checks the server again, refuses self-approval unless the server allows it, and treats a rejection as final).

Other plugins call :func:`post_to_review_channel` after they put an item in the queue, and
:func:`deliver_review_notes` (or the :data:`review_notes` hook) tells members what was decided while they were
away.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import hikari
import lightbulb

from hypotez.config import Capability
from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.keys import Key, build_key
from hypotez.permissions import Caller
from hypotez.plugins._checks import IN_SERVERS, OUTSIDE_SERVER, require, require_in_server
from hypotez.plugins._components import ComponentContext, ModalContext, button, button_row, handler, text_input
from hypotez.plugins._delivery import NO_MENTIONS
from hypotez.storage.models import ReviewKind, ReviewStatus
from hypotez.storage.repositories import AuditLog, ReviewRepository

if TYPE_CHECKING:
    from hypotez.storage.models import ReviewItem
    from hypotez.storage.repositories.reviews import Decision, ReviewContext, ReviewPolicy, ReviewStats

__all__ = [
    "deliver_review_notes",
    "describe_decision",
    "loader",
    "post_to_review_channel",
    "refresh_review_post",
    "review_notes",
    "tell_author",
]

_LOGGER = logging.getLogger(__name__)

loader = lightbulb.Loader()

_TEXT = "text"
#: Discord's limit on a text input's value.
_TEXT_INPUT_LIMIT = 4000
_REASON = "reason"
#: Discord's limit on a message's content.
_MESSAGE_LIMIT = 2000
#: How much of each part of an item a review message shows.
_ASKED_CLIP = 300
_PART_CLIP = 450
_QUOTE_CLIP = 80


# -- reading an item --------------------------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _quote(text: str, limit: int) -> str:
    """``text`` as a Discord block quote, clipped to ``limit`` characters."""
    clipped = _clip(text, limit) or "(empty)"
    return "\n".join(f"> {line}" for line in clipped.splitlines())


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style parts: [{"type": "text", "text": ...}, ...]
        parts: list[str] = []
        for part in content:  # pyright: ignore[reportUnknownVariableType]
            if isinstance(part, dict) and isinstance(part.get("text"), str):  # pyright: ignore[reportUnknownMemberType]
                parts.append(str(part["text"]))  # pyright: ignore[reportUnknownArgumentType]
        return " ".join(parts)
    return ""


def _last_user_turn(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":  # pyright: ignore[reportUnknownMemberType]
            return _content_text(message.get("content"))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
    return ""


def asked(context: ReviewContext) -> str:
    """What the member said that the item's reply answers (the prompt's last user turn)."""
    if context.arena is not None:
        return context.arena[0].user_text
    reply = context.reply
    if reply is not None:
        return reply.user_text if reply.user_text.strip() else _last_user_turn(list(reply.prompt_messages or []))
    if context.correction is not None:
        return _last_user_turn(list(context.correction.context or []))
    return ""


def _timestamp(when: dt.datetime | None) -> str:
    if when is None:
        return "some time ago"
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return f"<t:{int(when.timestamp())}:R>"


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _percent(share: float) -> str:
    return f"{round(share * 100)} %"


def _rating_words(context: ReviewContext) -> str:
    feedback = context.feedback
    if feedback is None:
        return "a rating"
    if feedback.kind == "thumbs":
        return "👍" if feedback.rating > 0 else "👎"
    return f"{feedback.rating}/5"


_KIND_TITLES = {
    ReviewKind.CORRECTION.value: "Correction",
    ReviewKind.RATING.value: "Rating",
    ReviewKind.NEEDS_CORRECTION.value: "Reply marked as wrong (needs a correction)",
    ReviewKind.ARENA.value: "Arena vote (a preference pair)",
}


def _votes_lines(context: ReviewContext) -> list[str]:
    lines: list[str] = []
    for vote in context.votes:
        if vote.vote == "approve":
            line = f"✅ <@{vote.curator_id}> approved" + (" an edited version" if vote.edited else "")
        else:
            line = f"❌ <@{vote.curator_id}> rejected" + (f": {_clip(vote.reason, 200)}" if vote.reason else "")
        lines.append(line)
    return lines


def _status_line(item: ReviewItem, policy: ReviewPolicy, approvals: int) -> str:
    if item.status == ReviewStatus.PENDING:
        if policy.approvals > 1:
            return f"pending ({approvals} of {policy.approvals} approvals)"
        return "pending"
    if item.status == ReviewStatus.APPROVED:
        return "✅ approved"
    return "❌ rejected" + (f": {_clip(item.reason, 200)}" if item.reason else "")


def render_item(context: ReviewContext, policy: ReviewPolicy, *, more_pending: int | None = None) -> str:
    """An item as a curator reads it: what was asked, the reply, what the member made, who and when, the votes."""
    item = context.item
    approvals = sum(1 for v in context.votes if v.vote == "approve")
    title = _KIND_TITLES.get(item.kind, item.kind)
    lines = [
        f"**Review #{item.id}** · {title} · {_status_line(item, policy, approvals)}",
        f"Made by <@{item.author_id}> {_timestamp(item.created_at)}",
    ]
    reply = context.reply
    if said := asked(context):
        lines += ["**The member asked:**", _quote(said, _ASKED_CLIP)]
    if context.arena is not None:
        match, vote = context.arena
        chosen = (match.model_a, match.answer_a) if vote.choice == "a" else (match.model_b, match.answer_b)
        other = (match.model_b, match.answer_b) if vote.choice == "a" else (match.model_a, match.answer_a)
        lines += [
            f"**Chosen in blind match #{match.id}** (`{chosen[0]}`):",
            _quote(chosen[1], _PART_CLIP),
            f"**Over** (`{other[0]}`):",
            _quote(other[1], _PART_CLIP),
        ]
    elif item.kind == ReviewKind.ARENA:
        lines.append("(the match of this vote was removed)")
    else:
        original = (
            reply.content if reply is not None else context.correction.original_text if context.correction else ""
        )
        lines += ["**The bot replied:**", _quote(original, _PART_CLIP)]
    if item.kind == ReviewKind.CORRECTION:
        corrected = context.correction.corrected_text if context.correction else "(the correction was removed)"
        lines += ["**Corrected to:**", _quote(corrected, _PART_CLIP)]
    elif context.feedback is not None:
        verb = "Marked as wrong" if item.kind == ReviewKind.NEEDS_CORRECTION else "Rated"
        lines.append(f"**{verb}:** {_rating_words(context)}")
        if context.feedback.comment:
            lines.append(_quote(context.feedback.comment, _PART_CLIP))
    votes = _votes_lines(context)
    lines.append("**Votes:** " + ("; ".join(votes) if votes else "none yet"))
    if more_pending is not None:
        lines.append(f"{more_pending} more pending." if more_pending else "No other item is pending.")
    return _clip("\n".join(lines), _MESSAGE_LIMIT)


def review_buttons(item: ReviewItem, *, skip: bool) -> list[hikari.api.MessageActionRowBuilder]:
    """The buttons of a pending item (none once it is decided)."""
    if item.status != ReviewStatus.PENDING:
        return []
    reject = button(build_key(Key.REVIEW_REJECT, item.id), label="Reject", style=hikari.ButtonStyle.DANGER)
    if item.kind == ReviewKind.NEEDS_CORRECTION:
        buttons = [
            button(build_key(Key.REVIEW_CORRECT, item.id), label="Correct it", style=hikari.ButtonStyle.PRIMARY),
            reject,
        ]
    else:
        buttons = [button(build_key(Key.REVIEW_APPROVE, item.id), label="Approve", style=hikari.ButtonStyle.SUCCESS)]
        if item.kind == ReviewKind.CORRECTION:
            buttons.append(button(build_key(Key.REVIEW_EDIT, item.id), label="Edit", style=hikari.ButtonStyle.PRIMARY))
        buttons.append(reject)
    if skip:
        buttons.append(button(build_key(Key.REVIEW_SKIP, item.id), label="Skip"))
    return [button_row(*buttons)]


# -- telling the author ---------------------------------------------------------------------------------------


def _what(context: ReviewContext) -> str:
    said = _clip(asked(context), _QUOTE_CLIP)
    reply = f"the reply to “{said}”" if said else "a reply"
    kind = context.item.kind
    if kind == ReviewKind.CORRECTION:
        return f"Your correction of {reply}"
    if kind == ReviewKind.RATING:
        return f"Your rating ({_rating_words(context)}) of {reply}"
    if kind == ReviewKind.ARENA:
        return f"Your arena vote on “{said}”" if said else "Your arena vote"
    return f"Your report that {reply} was wrong"


def _deciders(context: ReviewContext, vote: str) -> str:
    ids = [v.curator_id for v in context.votes if v.vote == vote]
    mentions = [f"<@{i}>" for i in dict.fromkeys(ids)]
    if not mentions:
        return "a curator"
    return mentions[0] if len(mentions) == 1 else ", ".join(mentions[:-1]) + " and " + mentions[-1]


def describe_decision(context: ReviewContext) -> str | None:
    """What became of an item, in plain words for its author (``None`` for what they need not be told: an item
    approved on arrival, which their own acknowledgement already said)."""
    item = context.item
    if item.status == ReviewStatus.PENDING:
        return None
    if not context.votes:
        if item.kind == ReviewKind.NEEDS_CORRECTION and item.status == ReviewStatus.APPROVED:
            return f"{_what(context)} was answered: someone wrote a corrected reply."
        if item.status == ReviewStatus.APPROVED:
            return None
    if item.status == ReviewStatus.APPROVED:
        use = {
            ReviewKind.CORRECTION.value: "the next model trained here learns from it.",
            ReviewKind.RATING.value: "it counts in the next training data built here.",
            ReviewKind.ARENA.value: "its preference pair is in the `arena` dataset.",
        }.get(item.kind, "thank you.")
        return f"{_what(context)} was approved by {_deciders(context, 'approve')}: {use}"
    reason = f": {_clip(item.reason, 300)}" if item.reason else "."
    return f"{_what(context)} was not accepted by {_deciders(context, 'reject')}{reason}"


async def tell_author(rest: hikari.api.RESTClient, reviews: ReviewRepository, item_id: int) -> bool:
    """Direct-message the author of a decided item if they asked for it (``/review notify``); ``True`` when they
    were told.  Closed DMs are no error: they hear of it with their next command."""
    context = await reviews.context(item_id)
    if context is None or context.item.notified:
        return False
    text = describe_decision(context)
    if text is None:
        await reviews.mark_notified([item_id])
        return False
    if not await reviews.wants_dm(context.item.author_id):
        return False
    try:
        channel = await rest.create_dm_channel(context.item.author_id)
        await rest.create_message(channel, _clip(text, _MESSAGE_LIMIT), **NO_MENTIONS)
    except hikari.ForbiddenError:
        _LOGGER.info("review item %d: the author's DMs are closed; they hear of it with their next command", item_id)
        return False
    await reviews.mark_notified([item_id])
    return True


async def deliver_review_notes(
    ctx: lightbulb.Context | ComponentContext | ModalContext, reviews: ReviewRepository, caller: Caller
) -> int:
    """After a command answered: one ephemeral follow-up listing the decisions on what the caller made that they
    have not been told about yet, which are then marked as told.  Returns how many were listed.

    Call it once the command has sent its initial response (it does nothing before: it never answers a command
    in its place); a follow-up Discord refuses (after a modal) leaves them for the next command."""
    if not ctx.initial_response_sent.is_set():
        return 0
    contexts = await reviews.undelivered(caller.user_id)
    if not contexts:
        return 0
    notes: list[str] = []
    told: list[int] = []
    silent: list[int] = []
    for context in contexts:
        text = describe_decision(context)
        (silent if text is None else told).append(context.item.id)
        if text is not None:
            notes.append(f"• {text}")
    await reviews.mark_notified(silent)
    if not notes:
        return 0
    heading = "What curators decided about what you made:" if len(notes) > 1 else "A curator decided:"
    try:
        await ctx.respond(_clip("\n".join([heading, *notes]), _MESSAGE_LIMIT), ephemeral=True, **NO_MENTIONS)
    except hikari.HTTPError:
        _LOGGER.info("could not tell member %d about %d review decisions now", caller.user_id, len(notes))
        return 0
    await reviews.mark_notified(told)
    return len(notes)


@lightbulb.hook(lightbulb.ExecutionSteps.POST_INVOKE, skip_when_failed=True, name="review_notes")
async def review_notes(
    _: lightbulb.ExecutionPipeline,
    ctx: lightbulb.Context,
    caller: Caller = lightbulb.di.INJECTED,
    reviews: ReviewRepository = lightbulb.di.INJECTED,
) -> None:
    """A client-wide hook: after each command, :func:`deliver_review_notes`."""
    await deliver_review_notes(ctx, reviews, caller)


# -- the review channel -----------------------------------------------------------------------------------------


async def post_to_review_channel(rest: hikari.api.RESTClient, reviews: ReviewRepository, item_id: int) -> bool:
    """Post a new pending item in its server's review channel, with the review buttons (nothing when the server
    has no review channel or the item is not pending; an item posted already has its post brought up to date);
    ``True`` when posted now.  Call it after storing the item."""
    context = await reviews.context(item_id)
    if context is None or context.item.guild_id is None or context.item.status != ReviewStatus.PENDING:
        return False
    if context.item.posted_message_id is not None:  # posted already (a replaced correction keeps its post)
        await refresh_review_post(rest, reviews, item_id)
        return False
    policy = await reviews.policy(context.item.guild_id)
    if policy.channel_id is None:
        return False
    try:
        message = await rest.create_message(
            policy.channel_id,
            render_item(context, policy),
            components=review_buttons(context.item, skip=False),
            **NO_MENTIONS,
        )
    except (hikari.ForbiddenError, hikari.NotFoundError) as exc:
        _LOGGER.warning("review item %d: cannot post in review channel %d: %s", item_id, policy.channel_id, exc)
        return False
    await reviews.set_posted(item_id, int(message.channel_id), int(message.id))
    return True


async def refresh_review_post(
    rest: hikari.api.RESTClient, reviews: ReviewRepository, item_id: int, *, except_message: int | None = None
) -> None:
    """Show an item's review-channel post as it now stands (its votes, or its outcome without buttons)."""
    context = await reviews.context(item_id)
    if context is None or context.item.posted_message_id is None or context.item.posted_channel_id is None:
        return
    if context.item.posted_message_id == except_message:
        return
    policy = await reviews.policy(context.item.guild_id)
    try:
        await rest.edit_message(
            context.item.posted_channel_id,
            context.item.posted_message_id,
            render_item(context, policy),
            components=review_buttons(context.item, skip=False),
            **NO_MENTIONS,
        )
    except (hikari.ForbiddenError, hikari.NotFoundError) as exc:
        _LOGGER.info("review item %d: its review-channel post is gone: %s", item_id, exc)


# -- /review next and the buttons -------------------------------------------------------------------------------


def _guild(caller: Caller) -> int:
    if caller.guild_id is None:
        raise InvalidInputError(OUTSIDE_SERVER)
    return caller.guild_id


async def _item_here(reviews: ReviewRepository, item_id: int, caller: Caller) -> ReviewContext:
    """The item an id names, refused unless it is in the caller's server's queue."""
    guild_id = _guild(caller)
    context = await reviews.context(item_id)
    if context is None or context.item.guild_id != guild_id:
        raise NotFoundError("review item", item_id, "That item is no longer in this server's review queue.")
    return context


async def _next_view(
    reviews: ReviewRepository, caller: Caller, *, after_id: int = 0, skipped: int | None = None
) -> tuple[str, list[hikari.api.MessageActionRowBuilder]]:
    """The oldest pending item the caller may review (after ``after_id``, wrapping round), with its buttons."""
    guild_id = _guild(caller)
    policy = await reviews.policy(guild_id)
    item = await reviews.next_pending(guild_id, caller.user_id, after_id=after_id, self_approval=policy.self_approval)
    if item is None and after_id:
        item = await reviews.next_pending(guild_id, caller.user_id, self_approval=policy.self_approval)
    pending = await reviews.pending_count(guild_id)
    if item is None:
        if pending == 0:
            return "🎉 Nothing to review: this server's review queue is empty.", []
        return (
            f"Nothing left for you to review: the {_plural(pending, 'pending item')} "
            f"{'is' if pending == 1 else 'are'} your own or already {'has' if pending == 1 else 'have'} your vote.",
            [],
        )
    context = await reviews.context(item.id)
    if context is None:  # removed in between
        return "That item was just removed. Run `/review next` again.", []
    text = render_item(context, policy, more_pending=max(pending - 1, 0))
    if skipped is not None and item.id == skipped:
        text = "This is the only item waiting for you.\n" + text
    return text, review_buttons(item, skip=True)


def _outcome(decision: Decision, policy: ReviewPolicy, vote: str, *, edited: bool) -> str:
    item = decision.item
    if item.status == ReviewStatus.REJECTED:
        return f"❌ You rejected #{item.id}: it will not be used for training."
    verb = "edited and approved" if edited else "approved"
    if item.status == ReviewStatus.APPROVED:
        use = {
            ReviewKind.CORRECTION.value: "its examples are in the `corrections` dataset now",
            ReviewKind.ARENA.value: "its preference pair is in the `arena` dataset now",
        }.get(item.kind, "it counts in the next dataset built here")
        return f"✅ You {verb} #{item.id}: {use}."
    assert vote == "approve"
    return (
        f"✅ You {verb} #{item.id}; it needs {_plural(policy.approvals, 'approval')} in all, "
        "so it waits for another curator."
    )


async def _vote(
    ctx: ComponentContext | ModalContext,
    caller: Caller,
    reviews: ReviewRepository,
    audit: AuditLog,
    *,
    vote: str,
    reason: str | None = None,
    edited_text: str | None = None,
) -> None:
    """Record the caller's vote on the item the id names; show the outcome and the next item on the message the
    button was on, then update the review-channel post and tell the author."""
    guild_id = _guild(caller)
    item_id = ctx.key.int_arg()
    policy = await reviews.policy(guild_id)
    decision = await reviews.vote(
        item_id,
        guild_id=guild_id,
        curator_id=caller.user_id,
        vote=vote,
        policy=policy,
        reason=reason,
        edited_text=edited_text,
    )
    await audit.record(
        f"review.{vote}",
        guild_id=guild_id,
        actor_id=caller.user_id,
        target=f"review:{item_id}",
        details={"status": decision.item.status, "previous": decision.previous, "edited": edited_text is not None},
    )
    outcome = _outcome(decision, policy, vote, edited=edited_text is not None)
    message = ctx.interaction.message
    on_post = message is not None and int(message.id) == decision.item.posted_message_id
    if on_post:  # the review channel's post: it shows this item as it now stands
        context = await reviews.context(item_id)
        assert context is not None
        text, rows = render_item(context, policy), review_buttons(context.item, skip=False)
        await ctx.respond(text, components=rows, edit=True, **NO_MENTIONS)
        await ctx.respond(outcome, ephemeral=True, **NO_MENTIONS)
    else:
        text, rows = await _next_view(reviews, caller)
        content = _clip(f"{outcome}\n\n{text}", _MESSAGE_LIMIT)
        if message is not None:
            await ctx.respond(content, components=rows, edit=True, **NO_MENTIONS)
        else:
            await ctx.respond(content, components=rows, ephemeral=True, **NO_MENTIONS)
    rest = ctx.client.rest
    await refresh_review_post(rest, reviews, item_id, except_message=int(message.id) if on_post and message else None)
    if decision.changed and decision.item.status != ReviewStatus.PENDING:
        await tell_author(rest, reviews, item_id)


@handler(loader, Key.REVIEW_APPROVE, capability=Capability.CURATE, arity=(1,))
async def approve(ctx: ComponentContext, caller: Caller, reviews: ReviewRepository, audit: AuditLog) -> None:
    await _vote(ctx, caller, reviews, audit, vote="approve")


@handler(loader, Key.REVIEW_REJECT, capability=Capability.CURATE, arity=(1,))
async def open_reject(ctx: ComponentContext, caller: Caller, reviews: ReviewRepository) -> None:
    context = await _item_here(reviews, ctx.key.int_arg(), caller)
    if context.item.status == ReviewStatus.REJECTED:
        raise InvalidInputError("This item was already rejected by a curator; a rejection is final.")
    rows: list[hikari.api.ComponentBuilder] = [
        text_input(
            _REASON,
            "Why? (the author is told)",
            placeholder="e.g. the original reply was right",
            paragraph=True,
            required=False,
            max_length=1000,
        )
    ]
    await ctx.respond_with_modal(
        f"Reject #{context.item.id}", build_key(Key.REVIEW_REJECT_MODAL, context.item.id), rows
    )


@handler(loader, Key.REVIEW_REJECT_MODAL, capability=Capability.CURATE, arity=(1,))
async def submit_reject(ctx: ModalContext, caller: Caller, reviews: ReviewRepository, audit: AuditLog) -> None:
    await _vote(ctx, caller, reviews, audit, vote="reject", reason=ctx.value(_REASON).strip() or None)


@handler(loader, Key.REVIEW_EDIT, capability=Capability.CURATE, arity=(1,))
async def open_edit(ctx: ComponentContext, caller: Caller, reviews: ReviewRepository) -> None:
    context = await _item_here(reviews, ctx.key.int_arg(), caller)
    if context.item.kind != ReviewKind.CORRECTION or context.correction is None:
        raise InvalidInputError("Only corrections can be edited.")
    text = context.correction.corrected_text
    if len(text) > _TEXT_INPUT_LIMIT:
        raise InvalidInputError(
            f"This correction is {len(text):,} characters, more than an edit box holds. Approve or reject it as it is."
        )
    rows: list[hikari.api.ComponentBuilder] = [
        text_input(_TEXT, "Corrected reply", value=text, paragraph=True, max_length=_TEXT_INPUT_LIMIT)
    ]
    await ctx.respond_with_modal(
        f"Edit and approve #{context.item.id}", build_key(Key.REVIEW_EDIT_MODAL, context.item.id), rows
    )


@handler(loader, Key.REVIEW_EDIT_MODAL, capability=Capability.CURATE, arity=(1,))
async def submit_edit(ctx: ModalContext, caller: Caller, reviews: ReviewRepository, audit: AuditLog) -> None:
    context = await _item_here(reviews, ctx.key.int_arg(), caller)
    text = ctx.value(_TEXT)
    unchanged = context.correction is not None and text.strip() == context.correction.corrected_text.strip()
    await _vote(ctx, caller, reviews, audit, vote="approve", edited_text=None if unchanged else text)


@handler(loader, Key.REVIEW_SKIP, capability=Capability.CURATE, arity=(1,))
async def skip(ctx: ComponentContext, caller: Caller, reviews: ReviewRepository) -> None:
    item_id = ctx.key.int_arg()
    current = await _item_here(reviews, item_id, caller)
    text, rows = await _next_view(reviews, caller, after_id=item_id, skipped=item_id)
    on_post = int(ctx.message.id) == current.item.posted_message_id
    if on_post:  # never replace the shared post: show the next item to this curator alone
        await ctx.respond(text, components=rows, ephemeral=True, **NO_MENTIONS)
    else:
        await ctx.respond(text, components=rows, edit=True, **NO_MENTIONS)


@handler(loader, Key.REVIEW_CORRECT, capability=Capability.CURATE, arity=(1,))
async def correct_flagged(ctx: ComponentContext, caller: Caller, reviews: ReviewRepository) -> None:
    """A reply marked as wrong: the normal correction box (submitting it settles the flag)."""
    # Imported here: the corrections plugin imports this module (to post new items in the review channel).
    from hypotez.plugins.corrections import correction_modal

    context = await _item_here(reviews, ctx.key.int_arg(), caller)
    if context.reply is None:
        raise NotFoundError("reply", context.item.reply_id or 0, "That reply no longer exists here.")
    if context.item.status != ReviewStatus.PENDING:
        raise InvalidInputError("This reply was dealt with already.")
    await ctx.respond_with_modal(*correction_modal(context.reply, None))


# -- the commands -----------------------------------------------------------------------------------------------

review = lightbulb.Group("review", "The review queue: what members made, before it teaches the bot", **IN_SERVERS)


@review.register
class ReviewNext(
    lightbulb.SlashCommand,
    name="next",
    description="The next item waiting for your review",
    hooks=[require_in_server(Capability.CURATE)],
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, reviews: ReviewRepository) -> None:
        text, rows = await _next_view(reviews, caller)
        await ctx.respond(text, components=rows, ephemeral=True, **NO_MENTIONS)


def _describe_policy(policy: ReviewPolicy) -> str:
    roles = ", ".join(f"<@&{r}>" for r in sorted(policy.trusted_roles)) if policy.trusted_roles else "none"
    channel = f"<#{policy.channel_id}>" if policy.channel_id else "none (curators use `/review next`)"
    return "\n".join(
        [
            "**Review settings in force here:**",
            f"• Approvals an item needs: {policy.approvals}",
            f"• Trusted roles (approved on arrival): {roles}",
            f"• Curators may approve what they made: {'yes' if policy.self_approval else 'no'}",
            f"• Review channel: {channel}",
        ]
    )


@review.register
class ReviewSettings(
    lightbulb.SlashCommand,
    name="settings",
    description="How this server reviews corrections and ratings",
    hooks=[require_in_server(Capability.ADMIN)],
):
    approvals = lightbulb.integer("approvals", "Approvals an item needs (1-5)", default=None, min_value=1, max_value=5)
    trusted_role = lightbulb.role(
        "trusted_role", "Trust this role: its members' work is approved on arrival", default=None
    )
    untrust_role = lightbulb.role("untrust_role", "Stop trusting this role", default=None)
    self_approval = lightbulb.boolean("self_approval", "Curators may approve what they made", default=None)
    channel = lightbulb.channel(
        "channel",
        "Post each new item here with the review buttons",
        default=None,
        channel_types=[hikari.ChannelType.GUILD_TEXT],
    )
    no_channel = lightbulb.boolean("no_channel", "Stop posting items in a review channel", default=False)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, reviews: ReviewRepository, audit: AuditLog) -> None:
        guild_id = _guild(caller)
        if self.channel is not None and self.no_channel:
            raise InvalidInputError("Give either `channel` or `no_channel`, not both.")
        if (
            self.trusted_role is not None
            and self.untrust_role is not None
            and self.trusted_role.id == self.untrust_role.id
        ):
            raise InvalidInputError("`trusted_role` and `untrust_role` name the same role.")
        current = await reviews.policy(guild_id)
        trusted: set[int] | None = None
        if self.trusted_role is not None or self.untrust_role is not None:
            trusted = set(current.trusted_roles)
            if self.trusted_role is not None:
                trusted.add(int(self.trusted_role.id))
            if self.untrust_role is not None:
                trusted.discard(int(self.untrust_role.id))
        channel_id = 0 if self.no_channel else int(self.channel.id) if self.channel is not None else None
        changes: dict[str, Any] = {
            "approvals": self.approvals,
            "trusted_roles": sorted(trusted) if trusted is not None else None,
            "self_approval": self.self_approval,
            "channel_id": channel_id,
        }
        policy = await reviews.set_policy(guild_id, **changes)
        if any(v is not None for v in changes.values()):
            await audit.record(
                "review.settings",
                guild_id=guild_id,
                actor_id=caller.user_id,
                details={k: v for k, v in changes.items() if v is not None},
            )
        await ctx.respond(_describe_policy(policy), ephemeral=True, **NO_MENTIONS)


def describe_stats(stats: ReviewStats) -> str:
    """``/review stats`` in words."""
    lines = ["**Review statistics for this server**"]
    if stats.curators:
        lines.append("Curators:")
        lines += [f"• <@{c.curator_id}>: {c.approved} approved, {c.rejected} rejected" for c in stats.curators[:20]]
        if len(stats.curators) > 20:
            lines.append(f"• … and {_plural(len(stats.curators) - 20, 'other curator')}")
    else:
        lines.append("No curator has voted yet.")
    statuses = [
        f"{stats.statuses.get(status.value, 0)} {status.value}"
        for status in (ReviewStatus.PENDING, ReviewStatus.APPROVED, ReviewStatus.REJECTED)
    ]
    total = sum(stats.statuses.values())
    lines.append(f"Items: {_plural(total, 'item')} in all: {', '.join(statuses)}.")
    rate = stats.approval_rate
    lines.append(
        "Approval rate: no item decided yet." if rate is None else f"Approval rate: {_percent(rate)} of decided items."
    )
    if stats.multi_reviewed == 0 or stats.agreement is None:
        lines.append("No item has had more than one reviewer yet.")
    else:
        verb = "item had" if stats.multi_reviewed == 1 else "items had"
        lines.append(
            f"{stats.multi_reviewed} {verb} more than one reviewer; "
            f"reviewers agreed on {_percent(stats.agreement)} of pairs."
        )
    return "\n".join(lines)


@review.register
class ReviewStatsCommand(
    lightbulb.SlashCommand,
    name="stats",
    description="Who reviewed what, and how often curators agree",
    hooks=[require_in_server(Capability.CURATE)],
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, reviews: ReviewRepository) -> None:
        stats = await reviews.stats(_guild(caller))
        await ctx.respond(describe_stats(stats), ephemeral=True, **NO_MENTIONS)


@review.register
class ReviewNotify(
    lightbulb.SlashCommand,
    name="notify",
    description="Get a direct message when a curator decides on what you made",
    hooks=[require(Capability.CORRECT)],
):
    dm = lightbulb.boolean("dm", "Send me a direct message (true) or tell me with my next command (false)")

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, reviews: ReviewRepository) -> None:
        await reviews.set_wants_dm(caller.user_id, self.dm)
        text = (
            "🔔 You will get a direct message when a curator approves or rejects a correction or rating of yours."
            if self.dm
            else "🔕 No direct messages: you will hear what curators decided the next time you use a command."
        )
        await ctx.respond(text, ephemeral=True)


loader.command(review)
