"""Custom ids for buttons and modals: built by one helper from named prefixes, parsed in one place.

A custom id is ``<prefix>:<arg>:<arg>...`` (Discord allows 100 characters).  Components carry every piece of
state they need in their id (or find it from the message they are on), so any process sharing the database
answers them, after a restart too.  Ids come back from members' clients: arguments are parsed strictly (ASCII
digits only) and a malformed one is refused with :class:`MalformedKeyError`.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from hypotez.errors import InvalidInputError

__all__ = ["ExpiredFormError", "Key", "MalformedKeyError", "ModalSigner", "ParsedKey", "build_key", "parse_key"]

_SEP = ":"
_MAX = 100


class Key(enum.StrEnum):
    """Prefixes of every custom id hypotez issues."""

    RATE_UP = "hz.up"
    RATE_DOWN = "hz.down"
    CORRECT = "hz.correct"
    CORRECTION_MODAL = "hz.cm"
    CORRECTION_VIEW = "hz.cv"
    CORRECTION_UNDO = "hz.cu"
    FEEDBACK_MODAL = "hz.fm"
    FEEDBACK_PAGE = "hz.fp"
    FEEDBACK_NEEDS = "hz.fn"
    JOB_CANCEL = "hz.jc"
    #: The confirmation Cancel asks for (each carries the job's id).
    JOB_CANCEL_CONFIRM = "hz.jcy"
    JOB_CANCEL_KEEP = "hz.jck"
    JOB_REFRESH = "hz.jr"
    TRANSCRIPT_CORRECT = "hz.tc"
    TRANSCRIPT_MODAL = "hz.tm"
    #: The review queue (each carries the review item's id).
    REVIEW_APPROVE = "hz.ra"
    REVIEW_REJECT = "hz.rr"
    REVIEW_REJECT_MODAL = "hz.rrm"
    REVIEW_EDIT = "hz.re"
    REVIEW_EDIT_MODAL = "hz.rem"
    REVIEW_SKIP = "hz.rs"
    REVIEW_CORRECT = "hz.rc"
    #: ``/audit``: a page of the log, and its exports (each carries the filters: days, member, action).
    AUDIT_PAGE = "hz.al"
    AUDIT_EXPORT_CSV = "hz.alc"
    AUDIT_EXPORT_JSONL = "hz.alj"
    #: ``/arena``: a vote on a match (carries the match id and ``a``, ``b`` or ``tie``).
    ARENA_VOTE = "hz.av"
    #: 🔁 under a reply (the reply is the message it is on); the member's pick of the better of the two answers
    #: (carries both replies' ids and ``1`` or ``2``).
    REGENERATE = "hz.rg"
    REGENERATE_PICK = "hz.rgp"
    #: ``/privacy forget-me`` and ``/privacy forget``: the confirmation asked first (each carries the member's id and
    #: the server whose data goes, ``0`` for everything of theirs everywhere).
    PRIVACY_FORGET_CONFIRM = "hz.pfy"
    PRIVACY_FORGET_KEEP = "hz.pfk"


#: Largest id argument accepted (Discord snowflakes and database ids fit in 63 bits).
_MAX_INT = 2**63 - 1


class MalformedKeyError(InvalidInputError):
    """A custom id of ours whose arguments are missing or not what we build."""

    def __init__(self, custom_id: str) -> None:
        super().__init__(
            "This button or form is damaged or out of date. Run the command again for a fresh one.",
        )
        self.custom_id = custom_id


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key: Key
    args: tuple[str, ...]

    def int_arg(self, index: int = 0) -> int:
        """Argument ``index`` as a non-negative integer; :class:`MalformedKeyError` unless it is plain ASCII digits
        (``int()`` alone would take ``"١٢"`` or ``" 12_0 "``)."""
        if index >= len(self.args):
            raise MalformedKeyError(build_raw(self))
        raw = self.args[index]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > _MAX_INT:
            raise MalformedKeyError(build_raw(self))
        return int(raw)

    @property
    def has_args(self) -> bool:
        return bool(self.args)


def build_raw(parsed: ParsedKey) -> str:
    return _SEP.join([parsed.key.value, *parsed.args])


def build_key(key: Key, *args: object) -> str:
    """``build_key(Key.RATE_UP, 42)`` -> ``"hz.up:42"``."""
    parts = [str(a) for a in args]
    if any(_SEP in p for p in parts):
        raise ValueError("custom id arguments cannot contain ':'")
    custom_id = _SEP.join([key.value, *parts])
    if len(custom_id) > _MAX:
        raise ValueError(f"custom id too long ({len(custom_id)} > {_MAX})")
    return custom_id


def parse_key(custom_id: str) -> ParsedKey | None:
    """The key and arguments of a custom id, or ``None`` when it is not one of ours."""
    prefix, *args = custom_id.split(_SEP)
    try:
        return ParsedKey(Key(prefix), tuple(args))
    except ValueError:
        return None


class ExpiredFormError(InvalidInputError):
    """A form (modal) submitted by someone it was not opened for, changed on the way, or opened too long ago."""

    def __init__(self) -> None:
        super().__init__(
            "This form was opened for someone else, has expired or was changed, so nothing was stored. "
            "Open it again and submit it within the hour."
        )


@dataclass(frozen=True, slots=True)
class ModalSigner:
    """Signs the custom id of every form (modal) the bot opens for the member it is opened for, with an expiry,
    and checks it when the form comes back: a submit replayed later, by someone else, or with its id edited is
    refused.  Nothing is kept in memory: any process sharing ``secret`` checks any form.

    ``secret`` is derived from the bot token (:meth:`from_token`), so every replica and restart of one bot agrees.
    """

    secret: bytes
    #: Seconds a form stays valid after it was opened.
    ttl: float = 3600.0

    @classmethod
    def from_token(cls, token: str | None) -> ModalSigner:
        if not token:  # no token: forms still work within this process
            return cls(secrets.token_bytes(32))
        return cls(hmac.new(b"hypotez form ids", token.encode(), hashlib.sha256).digest())

    def _mac(self, custom_id: str, user_id: int, expires: int) -> str:
        digest = hmac.new(self.secret, f"{custom_id}|{user_id}|{expires}".encode(), hashlib.sha256).digest()
        return base64.b32encode(digest[:10]).decode().lower()

    def sign(self, custom_id: str, *, user_id: int, now: float | None = None) -> str:
        """``custom_id`` with ``:<expiry>:<signature>`` for ``user_id``."""
        expires = int((time.time() if now is None else now) + self.ttl)
        signed = _SEP.join([custom_id, str(expires), self._mac(custom_id, user_id, expires)])
        if len(signed) > _MAX:
            raise ValueError(f"signed custom id too long ({len(signed)} > {_MAX})")
        return signed

    def verify(self, signed: str, *, user_id: int, now: float | None = None) -> str:
        """The custom id ``signed`` was made from, if it was signed for ``user_id`` and has not expired."""
        custom_id, _, tail = signed.rpartition(_SEP)
        custom_id, _, raw_expiry = custom_id.rpartition(_SEP)
        if not custom_id or not (raw_expiry.isascii() and raw_expiry.isdigit()) or len(raw_expiry) > 12:
            raise ExpiredFormError
        expires = int(raw_expiry)
        if not hmac.compare_digest(tail, self._mac(custom_id, user_id, expires)):
            raise ExpiredFormError
        if (time.time() if now is None else now) > expires:
            raise ExpiredFormError
        return custom_id
