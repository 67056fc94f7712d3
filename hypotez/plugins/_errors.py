"""How a failure reaches the member: a domain error's own plain message, anything else a reference id."""

from __future__ import annotations

import logging
import secrets

import lightbulb

from hypotez.errors import HypotezError
from hypotez.text import redact

__all__ = ["describe_error", "fit", "handle_command_error"]

_LOGGER = logging.getLogger(__name__)
#: The most characters Discord accepts in a message.
_DISCORD_LIMIT = 2000


def describe_error(exc: BaseException, *, where: str) -> str:
    """The reply for a failed interaction: a domain error's own message (with anything that looks like a
    credential redacted: it may quote an upstream service; cut to what Discord accepts, or the member would get
    nothing), or a reference id for anything else (the error itself is logged with that id, never shown)."""
    domain = _find_domain_error(exc)
    if domain is not None:
        return fit(redact(domain.user_message, limit=None))
    ref = secrets.token_hex(4)
    _LOGGER.error("unexpected error [ref %s] in %s", ref, where, exc_info=exc)
    return f"Something went wrong on our side. If it keeps happening, tell an administrator the reference `{ref}`."


def fit(message: str) -> str:
    """``message`` cut to Discord's 2,000 characters (longer messages are refused, and nothing arrives)."""
    return message if len(message) <= _DISCORD_LIMIT else message[: _DISCORD_LIMIT - 1].rstrip() + "…"


def _find_domain_error(exc: BaseException) -> HypotezError | None:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, HypotezError):
            return current
        if isinstance(current, lightbulb.exceptions.ExecutionPipelineFailedException):
            stack.extend(current.causes)
        if current.__cause__ is not None:
            stack.append(current.__cause__)
    return None


async def handle_command_error(exc: lightbulb.exceptions.ExecutionPipelineFailedException) -> bool:
    """lightbulb's error handler: the member always gets an answer, ephemeral."""
    ctx = exc.context
    message = describe_error(exc, where=f"/{ctx.command_data.qualified_name}")
    try:
        await ctx.respond(message, ephemeral=True)
    except Exception:  # hikari errors, or a response lightbulb can no longer send
        _LOGGER.warning("could not tell the user about an error in /%s", ctx.command_data.qualified_name)
    return True
