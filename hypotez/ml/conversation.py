"""Conversations: which model answers where, and the messages sent to it within a token budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hypotez.ml.tokens import estimate_tokens

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hypotez.ml.chat import ChatMessage
    from hypotez.storage.models import BotReply

__all__ = ["Turn", "build_messages", "turns_from_replies"]

#: Tokens a chat format spends on each message besides its content (role markers, separators).
PER_MESSAGE_OVERHEAD = 4


@dataclass(frozen=True, slots=True)
class Turn:
    """One exchange: what a member said and what the bot answered."""

    user: str
    assistant: str


def turns_from_replies(replies: Sequence[BotReply]) -> list[Turn]:
    """Earlier exchanges, reconstructed from stored replies (oldest first); a reply the model did not give (empty,
    or the backend failed) is left out rather than sent back as an empty answer."""
    return [Turn(user=r.user_text, assistant=r.content) for r in replies if r.content.strip()]


def _cost(message: ChatMessage) -> int:
    return estimate_tokens(message["content"]) + PER_MESSAGE_OVERHEAD


def build_messages(
    user_text: str,
    *,
    history: Sequence[Turn] = (),
    system_prompt: str | None = None,
    budget: int = 6000,
) -> list[ChatMessage]:
    """The messages for the model: system prompt, as many recent turns as fit ``budget``, the new message.

    Whole turns are dropped, oldest first; the system prompt and the new message are always sent.
    """
    head: list[ChatMessage] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    tail: ChatMessage = {"role": "user", "content": user_text}
    remaining = budget - sum(_cost(m) for m in head) - _cost(tail)
    kept: list[ChatMessage] = []
    for turn in reversed(history):
        pair: list[ChatMessage] = [
            {"role": "user", "content": turn.user},
            {"role": "assistant", "content": turn.assistant},
        ]
        cost = sum(_cost(m) for m in pair)
        if cost > remaining:
            break
        remaining -= cost
        kept[:0] = pair
    return [*head, *kept, tail]
