"""Forms (modals) are answered only as they were opened: by the member they were opened for, unedited, within
the hour.  Their ids are signed (nothing is kept in memory), so any replica checks any form."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from hypotez.keys import ExpiredFormError, ModalSigner
from hypotez.storage.models import Correction
from tests.fakes.interactions import ADMIN_MEMBER, USER_ID, message_command, modal_submit, slash

if TYPE_CHECKING:
    from tests.conftest import RunningBot

REFUSED = "This form was opened for someone else, has expired or was changed"


async def _corrections(hz: RunningBot) -> list[Correction]:
    async with hz.services.db.session() as session:
        return list((await session.scalars(select(Correction))).all())


@pytest.mark.asyncio
async def test_a_form_is_answered_only_for_the_member_it_was_opened_for(hz: RunningBot) -> None:
    hz.openai.reply_with("Sydney.")
    asked = await hz.send(slash("chat", {"message": "Capital of Australia?"}))
    assert asked.original_message is not None
    opened = await hz.send(message_command("Correct this reply", asked.original_message))
    assert opened.modal is not None
    custom_id = opened.modal.custom_id
    assert custom_id.count(":") == 5  # hz.cm:<reply>:<start>:<end>:<expiry>:<signature>

    # Another member (an administrator, even) submitting the same form: refused, nothing stored.
    other = await hz.send(opened.modal.submit({"Corrected reply": "Hijacked."}, user=ADMIN_MEMBER))
    assert other.content is not None
    assert REFUSED in other.content
    # The id edited to name another part of the reply (or another reply): refused.
    prefix, reply_id, start, end, expiry, signature = custom_id.split(":")
    edited = ":".join([prefix, reply_id, "0", "1", expiry, signature])
    forged = await hz.send(modal_submit(edited, {"text": "Hijacked."}))
    assert forged.content is not None
    assert REFUSED in forged.content
    # Unsigned, as a client could make it up: refused.
    bare = await hz.send(modal_submit(f"{prefix}:{reply_id}:{start}:{end}", {"text": "Hijacked."}))
    assert bare.content is not None
    assert REFUSED in bare.content
    assert await _corrections(hz) == []

    # The member it was opened for: stored.
    mine = await hz.send(opened.modal.submit({"Corrected reply": "Canberra."}))
    assert mine.content is not None
    assert "Correction saved" in mine.content
    [stored] = await _corrections(hz)
    assert (stored.author_id, stored.corrected_text) == (USER_ID, "Canberra.")


@pytest.mark.asyncio
async def test_a_form_expires_after_an_hour(hz: RunningBot) -> None:
    hz.openai.reply_with("Sydney.")
    asked = await hz.send(slash("chat", {"message": "Capital of Australia?"}))
    assert asked.original_message is not None
    opened = await hz.send(message_command("Correct this reply", asked.original_message))
    assert opened.modal is not None
    unsigned = opened.modal.custom_id.rsplit(":", 2)[0]
    signer = hz.app.get(ModalSigner)
    stale = signer.sign(unsigned, user_id=USER_ID, now=time.time() - signer.ttl - 60)
    late = await hz.send(modal_submit(stale, {"text": "Canberra."}))
    assert late.content is not None
    assert REFUSED in late.content
    assert await _corrections(hz) == []


def test_signatures_bind_the_id_the_member_and_the_bot() -> None:
    signer = ModalSigner.from_token("token-of-one-bot")
    signed = signer.sign("hz.cm:1:0:5", user_id=42, now=1000.0)
    assert signer.verify(signed, user_id=42, now=1001.0) == "hz.cm:1:0:5"
    assert ModalSigner.from_token("token-of-one-bot").verify(signed, user_id=42, now=1001.0) == "hz.cm:1:0:5"
    for check in (
        lambda: signer.verify(signed, user_id=43, now=1001.0),  # another member
        lambda: ModalSigner.from_token("another-bot").verify(signed, user_id=42, now=1001.0),  # another bot
        lambda: signer.verify(signed.replace("hz.cm:1:", "hz.cm:2:"), user_id=42, now=1001.0),  # edited
        lambda: signer.verify(signed, user_id=42, now=1000.0 + signer.ttl + 1),  # expired
        lambda: signer.verify("hz.cm:1:0:5", user_id=42, now=1001.0),  # never signed
    ):
        with pytest.raises(ExpiredFormError):
            check()
