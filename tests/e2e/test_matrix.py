"""The capability × ownership matrix of every button and form the bot answers.

Every handler registered with the component router is pressed (or submitted) by:
- a member of this server without the handler's capability → refused for the capability, whatever the id names;
- a member holding it → not refused for the capability (the fake ids then name nothing: "no longer" / "not
  found" answers, never another member's data);
- an administrator of another server, with ids naming this server's reply, correction and review item →
  answered as if they did not exist, and nothing changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import hikari
import pytest
from sqlalchemy import func, select

from hypotez.config import Capability
from hypotez.keys import Key, ModalSigner, build_key
from hypotez.storage.models import ArenaMatch, ArenaVote, Correction, Feedback, ReviewItem, ReviewVote
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    GUILD_ID,
    USER_ID,
    button,
    in_other_guild,
    member_payload,
    message_payload,
    modal_submit,
    slash,
    user_payload,
)

if TYPE_CHECKING:
    from tests.conftest import RunningBot

#: A role nobody in the tests holds: every capability is granted to it only.
NOBODY_ROLE = 1_100_000_000_000_000_499
MEMBER = member_payload(user_payload(USER_ID, "member"))
OTHER_GUILD = 1_100_000_000_000_000_777
MODAL_KEYS = {
    Key.CORRECTION_MODAL,
    Key.FEEDBACK_MODAL,
    Key.TRANSCRIPT_MODAL,
    Key.REVIEW_REJECT_MODAL,
    Key.REVIEW_EDIT_MODAL,
}


def _ids_for(key: Key, arity: tuple[int, ...], first: int = 1) -> str:
    count = max(arity)
    return build_key(key, *([first] + [0] * (count - 1) if count else []))


def _interaction(hz: RunningBot, custom_id: str, key: Key, user: dict[str, Any]) -> dict[str, Any]:
    message = message_payload("a message of the bot", author_bot=True)
    if key in MODAL_KEYS:
        signed = hz.app.get(ModalSigner).sign(custom_id, user_id=int(user["user"]["id"]))
        return modal_submit(signed, {"text": "x", "reason": "x", "rating": "3", "comment": "x"}, user=user)
    return button(custom_id, message, user=user)


def _answer(result: Any) -> str:
    texts = [str(result.content or "")]
    texts += [str((call.json or {}).get("content") or "") for call in result.followups]
    modal = result.modal
    return " ".join(texts) + (" <modal>" if modal is not None else "")


@pytest.mark.asyncio
async def test_every_handler_checks_its_capability_first(hz: RunningBot) -> None:
    handlers = hz.app.router.handlers
    assert set(handlers) == set(Key)  # every key the bot issues is answered by exactly one handler
    await hz.services.guild_settings.update(
        GUILD_ID, capability_roles={c.value: [NOBODY_ROLE] for c in Capability if c is not Capability.ADMIN}
    )
    for key, entry in handlers.items():
        custom_id = _ids_for(key, entry.arity)
        refused = await hz.send(_interaction(hz, custom_id, key, MEMBER))
        assert f"You need the `{entry.capability.value}` capability" in _answer(refused), (key, _answer(refused))
        allowed = await hz.send(_interaction(hz, custom_id, key, ADMIN_MEMBER))
        assert "capability" not in _answer(allowed), (key, _answer(allowed))


async def _state(hz: RunningBot) -> tuple[int, int, int, int]:
    async with hz.services.db.session() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (Correction, Feedback, ReviewItem, ReviewVote)
        ]
    return tuple(int(c or 0) for c in counts)  # type: ignore[return-value]


@pytest.mark.asyncio
async def test_another_servers_administrator_reaches_nothing_of_this_server(hz: RunningBot) -> None:
    hz.openai.reply_with("Sydney.")
    asked = await hz.send(slash("chat", {"message": "Capital of Australia?"}))
    reply_message = asked.original_message
    assert reply_message is not None
    await hz.send(slash("correct", {"message_id": reply_message["id"], "correction": "Canberra."}))
    arena_message = (await hz.send(slash("arena", {"message": "Capital?"}, subcommand="start"))).original_message
    assert arena_message is not None
    async with hz.services.db.session() as session:
        correction = (await session.scalars(select(Correction))).one()
        item = (await session.scalars(select(ReviewItem))).one()
        match = (await session.scalars(select(ArenaMatch))).one()
    before = await _state(hz)

    names = {
        Key.RATE_UP: None,
        Key.RATE_DOWN: None,
        Key.CORRECT: correction.reply_id,
        Key.CORRECTION_VIEW: correction.id,
        Key.CORRECTION_UNDO: correction.id,
        Key.FEEDBACK_NEEDS: correction.reply_id,
        Key.REVIEW_APPROVE: item.id,
        Key.REVIEW_REJECT: item.id,
        Key.REVIEW_EDIT: item.id,
        Key.REVIEW_SKIP: item.id,
        Key.REVIEW_CORRECT: item.id,
    }
    outsider = ADMIN_MEMBER  # an administrator, but of the other server below
    for key, target in names.items():
        custom_id = build_key(key) if target is None else build_key(key, target)
        press = in_other_guild(button(custom_id, reply_message, user=outsider), OTHER_GUILD)
        answer = _answer(await hz.send(press))
        assert "<modal>" not in answer, key
        assert "Canberra" not in answer, (key, answer)  # never another server's data
        assert "Sydney" not in answer, (key, answer)
    for choice in ("a", "b", "tie"):
        press = in_other_guild(
            button(build_key(Key.ARENA_VOTE, match.id, choice), arena_message, user=outsider), OTHER_GUILD
        )
        answer = _answer(await hz.send(press))
        assert "Sydney" not in answer, (choice, answer)
        assert "gpt-" not in answer, (choice, answer)  # nor which model answered
    for key in (Key.PRIVACY_FORGET_CONFIRM, Key.PRIVACY_FORGET_KEEP):  # this server's member, or everything of theirs
        for scope in (GUILD_ID, 0):
            press = in_other_guild(button(build_key(key, USER_ID, scope), reply_message, user=outsider), OTHER_GUILD)
            answer = _answer(await hz.send(press))
            assert "Deleted" not in answer, (key, scope, answer)
            assert "nothing was deleted" in answer.lower(), (key, scope, answer)
            assert "only the member" in answer.lower() or "another server" in answer, (key, scope, answer)
    for key, target in ((Key.CORRECTION_MODAL, f"{correction.reply_id}:0:7"), (Key.REVIEW_EDIT_MODAL, item.id)):
        signed = hz.app.get(ModalSigner).sign(f"{key.value}:{target}", user_id=int(outsider["user"]["id"]))
        submit = in_other_guild(modal_submit(signed, {"text": "Hijacked."}, user=outsider), OTHER_GUILD)
        answer = _answer(await hz.send(submit))
        assert "saved" not in answer.lower(), (key, answer)
        assert "approved" not in answer.lower(), (key, answer)
    assert await _state(hz) == before  # no rating, correction, review item or vote was added or removed
    async with hz.services.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(ArenaVote)) == 0
    async with hz.services.db.session() as session:
        assert (await session.get(Correction, correction.id)).corrected_text == "Canberra."  # type: ignore[union-attr]


def _leaves(command: Any) -> list[Any]:
    import lightbulb

    if isinstance(command, lightbulb.Group | lightbulb.SubGroup):
        return [leaf for sub in command.subcommands.values() for leaf in _leaves(sub)]
    return [command]


def _capability_of(leaf: Any) -> str:
    [name] = [h.name for h in leaf._command_data.hooks if h.name.startswith("require_")]
    return name.removeprefix("require_").removesuffix("_in_server")


@pytest.mark.asyncio
async def test_every_command_refuses_a_member_without_its_capability(hz: RunningBot) -> None:
    """Every slash and context-menu command, used by a member of this server whose server grants every capability
    to a role they lack, is refused for that capability before it does anything."""
    from hypotez.storage.models import AuditEntry, BotReply
    from tests.fakes.interactions import message_command

    await hz.services.guild_settings.update(
        GUILD_ID, capability_roles={c.value: [NOBODY_ROLE] for c in Capability if c is not Capability.ADMIN}
    )
    async with hz.services.db.session() as session:
        audit_before = await session.scalar(select(func.count()).select_from(AuditEntry))
    target = message_payload("a message", author_bot=True)
    checked = 0
    for command in hz.app.client.registered_commands:
        for leaf in _leaves(command):
            data = leaf._command_data
            capability = _capability_of(leaf)
            parts = data.qualified_name.split(" ")
            if data.type is hikari.CommandType.MESSAGE:
                payload = message_command(data.name, target, user=MEMBER)
            else:
                payload = slash(parts[0], {}, subcommand=parts[-1] if len(parts) > 1 else None, user=MEMBER)
            answer = _answer(await hz.send(payload))
            assert f"You need the `{capability}` capability" in answer, (data.qualified_name, answer)
            checked += 1
    assert checked >= 40
    async with hz.services.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == audit_before
        assert await session.scalar(select(func.count()).select_from(BotReply)) == 0


@pytest.mark.asyncio
async def test_no_autocomplete_reveals_data_to_a_member_without_the_capability(hz: RunningBot) -> None:
    """Every option that autocompletes, typed into by a member of this server lacking the command's capability
    (or by a member of another server), offers nothing of this server: no reply, dataset, file, model, job or
    vocabulary name."""
    from tests.fakes.interactions import autocomplete

    # Something of this server for each kind of name an autocomplete offers.
    hz.openai.reply_with("Sydney.")
    await hz.send(slash("chat", {"message": "Capital of Australia?"}))
    await hz.send(slash("vocabulary", {"term": "Zyphrawn"}, subcommand="add", user=ADMIN_MEMBER))
    area = hz.settings.data_dir / "guilds" / str(GUILD_ID) / "datasets"
    area.mkdir(parents=True, exist_ok=True)
    (area / "secret-plans.jsonl").write_text('{"prompt": "a", "completion": "b"}\n', encoding="utf-8")
    await hz.services.guild_settings.update(
        GUILD_ID, capability_roles={c.value: [NOBODY_ROLE] for c in Capability if c is not Capability.ADMIN}
    )
    outsider = member_payload(user_payload(1_100_000_000_000_000_888, "outsider"))
    checked = 0
    for command in hz.app.client.registered_commands:
        for leaf in _leaves(command):
            data = leaf._command_data
            parts = data.qualified_name.split(" ")
            for option in data.options.values():
                if not option.autocomplete:
                    continue
                for user, guild in ((MEMBER, None), (outsider, OTHER_GUILD)):
                    payload = autocomplete(
                        parts[0], {option.name: ""}, option.name,
                        subcommand=parts[-1] if len(parts) > 1 else None, user=user,
                    )  # fmt: skip
                    if guild is not None:
                        payload = in_other_guild(payload, guild)
                    offered = (await hz.send(payload)).choices
                    shown = " ".join(f"{c['name']} {c['value']}" for c in offered)
                    for secret in ("Capital of Australia", "Zyphrawn", "secret-plans"):
                        assert secret not in shown, (data.qualified_name, option.name, user["user"]["id"], shown)
                    checked += 1
    assert checked >= 20
