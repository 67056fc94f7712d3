"""Who a caller is, beyond the capability rules themselves: grants from the settings file merged with those given
by ``/admin grant``; a server interaction without a member object (a user-installed app in a server) treated like
a direct message; and a member replying to the bot on the gateway, whose Administrator comes from the cached
roles and whose channel's settings apply.

Each test here was written against a weakened copy of the check it names (mutation testing, ``make mutate``)
and fails on it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from hypotez.config import Capability, GuildPermissions, Settings
from hypotez.permissions import caller_from_message, resolve_caller
from hypotez.plugins._checks import OUTSIDE_SERVER
from hypotez.storage.repositories import GuildSettingsRepository
from tests.conftest import running_hypotez
from tests.fakes.discord_gateway import guild_member_payload, guild_payload, message_create, role_payload
from tests.fakes.gateway_harness import running_gateway_bot
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    ADMIN_ROLE_ID,
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    BOT_USER,
    BOT_USER_ID,
    CHANNEL_ID,
    DEFAULT_PERMISSIONS,
    GUILD_ID,
    member_payload,
    said,
    slash,
    user_payload,
)

if TYPE_CHECKING:
    from tests.fakes.gateway_harness import RunningGatewayBot
    from tests.fakes.openai_api import FakeOpenAI

#: Roles of the test server: one granted ``files`` in the settings file, one by ``/admin grant``, one in both,
#: and one with broad permissions but not Administrator.
FILE_ROLE = 1_100_000_000_000_000_410
GRANTED_ROLE = 1_100_000_000_000_000_411
BOTH_ROLE = 1_100_000_000_000_000_412
MODERATOR_ROLE = 1_100_000_000_000_000_413
TRAIN_ROLE = 1_100_000_000_000_000_414

#: Every permission but Administrator.
ALMOST_ALL = ALL_PERMISSIONS & ~ADMINISTRATOR


def _member(user_id: int, name: str, roles: list[int], permissions: int = DEFAULT_PERMISSIONS) -> dict[str, Any]:
    return member_payload(user_payload(user_id, name), permissions=permissions, roles=roles)


FILE_MEMBER = _member(1_100_000_000_000_000_910, "filer", [FILE_ROLE])
GRANTED_MEMBER = _member(1_100_000_000_000_000_911, "granted", [GRANTED_ROLE])
BOTH_MEMBER = _member(1_100_000_000_000_000_912, "both", [BOTH_ROLE])
MODERATOR = _member(1_100_000_000_000_000_913, "moderator", [MODERATOR_ROLE], permissions=ALMOST_ALL)
PLAIN_MEMBER = _member(1_100_000_000_000_000_914, "plain", [])
#: On the gateway: the moderator, also holding the role the settings file grants `files`.
FILING_MODERATOR = _member(1_100_000_000_000_000_913, "moderator", [MODERATOR_ROLE, FILE_ROLE], permissions=ALMOST_ALL)


def _granting(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "permissions": {
                GUILD_ID: GuildPermissions(
                    roles={Capability.FILES: [FILE_ROLE, BOTH_ROLE], Capability.TRAIN: [TRAIN_ROLE]}
                )
            }
        }
    )


async def _grant_in_database(guild_settings: GuildSettingsRepository) -> None:
    """What ``/admin grant`` stores: ``files`` to two roles (one already granted in the file), ``curate`` to one."""
    await guild_settings.update(
        GUILD_ID, 0, capability_roles={"files": [BOTH_ROLE, GRANTED_ROLE], "curate": [GRANTED_ROLE]}
    )


@pytest.mark.asyncio
async def test_settings_file_grants_merge_with_admin_grants(bot_settings: Settings, openai_fake: FakeOpenAI) -> None:
    async with running_hypotez(_granting(bot_settings), openai_fake) as hz:
        guild_settings = hz.services.guild_settings
        await _grant_in_database(guild_settings)
        await guild_settings.update(GUILD_ID, CHANNEL_ID, system_prompt="This channel's prompt.")
        # Through the command: /getfile needs `files`; allowed members are told the file is missing.
        for member, allowed in [
            (FILE_MEMBER, True),  # the settings file's grant
            (GRANTED_MEMBER, True),  # /admin grant's
            (BOTH_MEMBER, True),
            (MODERATOR, False),  # broad permissions are not Administrator
            (PLAIN_MEMBER, False),
            (ADMIN_MEMBER, True),
        ]:
            result = await hz.send(slash("getfile", {"path": "exports/none.jsonl"}, user=member))
            text = said(result)
            assert ("There is nothing at `exports/none.jsonl`" in text) is allowed, (member["user"]["username"], text)
            assert ("`files` capability" in text) is not allowed, (member["user"]["username"], text)

        # The caller as resolved: the merged grants, each role once, in order.
        bot = hz.app.bot
        interaction = bot.entity_factory.deserialize_command_interaction(
            slash("getfile", {"path": "x"}, user=FILE_MEMBER)
        )
        caller = await resolve_caller(interaction, hz.settings, guild_settings)
        assert caller.guild_id == GUILD_ID
        assert caller.user_id == int(FILE_MEMBER["user"]["id"])
        assert caller.channel_id == CHANNEL_ID
        assert caller.role_ids == {FILE_ROLE, GUILD_ID}  # hikari counts @everyone (the guild's id) in
        assert not caller.is_admin
        assert dict(caller.grants) == {
            "files": sorted([FILE_ROLE, BOTH_ROLE, GRANTED_ROLE]),
            "train": [TRAIN_ROLE],
            "curate": [GRANTED_ROLE],
        }
        assert caller.can(Capability.FILES)
        assert not caller.can(Capability.TRAIN)
        assert caller.here.system_prompt == "This channel's prompt."  # the interaction's channel's settings
        admin = await resolve_caller(
            bot.entity_factory.deserialize_command_interaction(slash("getfile", {"path": "x"}, user=ADMIN_MEMBER)),
            hz.settings,
            guild_settings,
        )
        assert admin.is_admin
        assert admin.role_ids == {ADMIN_ROLE_ID, GUILD_ID}


def _user_installed(payload: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """``payload`` as Discord sends a user-installed app's command in a server the bot is not in: the guild's id,
    the user, and no member object."""
    payload.pop("member", None)
    payload["user"] = user
    payload["authorizing_integration_owners"] = {"1": user["id"]}
    payload["context"] = 0
    return payload


@pytest.mark.asyncio
async def test_a_server_interaction_without_a_member_is_treated_like_a_direct_message(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    async with running_hypotez(_granting(bot_settings), openai_fake) as hz:
        await _grant_in_database(hz.services.guild_settings)
        root = user_payload(int(ADMIN_MEMBER["user"]["id"]), "root")
        (hz.settings.data_dir / "guilds" / str(GUILD_ID) / "exports").mkdir(parents=True)
        (hz.settings.data_dir / "guilds" / str(GUILD_ID) / "exports" / "theirs.jsonl").write_text("{}\n")
        refused = await hz.send(_user_installed(slash("getfile", {"path": "exports/theirs.jsonl"}), root))
        assert refused.ephemeral
        assert said(refused) == OUTSIDE_SERVER
        # The open capabilities work as in a direct message.
        hz.openai.reply_with("Hello from a DM-like place.")
        chatted = await hz.send(_user_installed(slash("chat", {"message": "hi"}), root))
        assert "Hello from a DM-like place." in said(chatted)

        interaction = hz.app.bot.entity_factory.deserialize_command_interaction(
            _user_installed(slash("getfile", {"path": "x"}), root)
        )
        assert interaction.guild_id == GUILD_ID
        caller = await resolve_caller(interaction, hz.settings, hz.services.guild_settings)
        assert caller.guild_id is None
        assert caller.user_id == int(root["id"])
        assert caller.channel_id == CHANNEL_ID
        assert not caller.is_admin
        assert caller.role_ids == frozenset()
        assert dict(caller.grants) == {}
        assert caller.can(Capability.CHAT)
        assert not caller.can(Capability.FILES)
        direct = await resolve_caller(
            hz.app.bot.entity_factory.deserialize_command_interaction(
                slash("getfile", {"path": "x"}, user=root, guild=False)
            ),
            hz.settings,
            hz.services.guild_settings,
        )
        assert (direct.user_id, direct.guild_id, direct.channel_id) == (int(root["id"]), None, CHANNEL_ID)


# ------------------------------------------------------------------------------------------------ gateway replies


def _gateway_guild() -> dict[str, Any]:
    roles = [
        role_payload(GUILD_ID, "@everyone", permissions=DEFAULT_PERMISSIONS),
        role_payload(ADMIN_ROLE_ID, "admin", permissions=ALL_PERMISSIONS | ADMINISTRATOR, position=3),
        role_payload(MODERATOR_ROLE, "moderator", permissions=ALMOST_ALL, position=2),
        role_payload(FILE_ROLE, "filers", position=1),
    ]
    members = [
        guild_member_payload(ADMIN_MEMBER, roles=[ADMIN_ROLE_ID]),
        guild_member_payload(FILING_MODERATOR),
        guild_member_payload(FILE_MEMBER, roles=[FILE_ROLE]),
    ]
    return guild_payload(roles=roles, members=members)


async def _message_caller(gw: RunningGatewayBot, member: dict[str, Any], *, guild: bool = True) -> Any:
    """The caller the message listener gets for a message ``member`` sends in the test channel."""
    message = gw.bot.entity_factory.deserialize_message(message_create("hello", author=member, guild=guild))
    return await caller_from_message(message, gw.app.get(Settings), gw.app.get(GuildSettingsRepository))


@pytest.mark.asyncio
async def test_a_gateway_reply_reads_administrator_from_the_cached_roles(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    async with running_gateway_bot(_granting(bot_settings), openai=openai_fake, guilds=[_gateway_guild()]) as gw:
        guild_settings = gw.app.get(GuildSettingsRepository)
        await _grant_in_database(guild_settings)
        await guild_settings.update(GUILD_ID, CHANNEL_ID, system_prompt="Answer like a pirate.")
        await guild_settings.update(GUILD_ID, 0, system_prompt="Answer plainly.")
        await guild_settings.update(GUILD_ID, CHANNEL_ID + 1, system_prompt="Another channel's.")
        assert gw.bot.cache.get_role(ADMIN_ROLE_ID) is not None  # the roles are cached

        admin = await _message_caller(gw, ADMIN_MEMBER)
        assert admin.is_admin
        assert admin.role_ids >= {ADMIN_ROLE_ID}
        assert admin.can(Capability.TRAIN)

        moderator = await _message_caller(gw, FILING_MODERATOR)  # roles, broad permissions, no Administrator
        assert not moderator.is_admin
        assert moderator.role_ids - {GUILD_ID} == {MODERATOR_ROLE, FILE_ROLE}
        assert moderator.can(Capability.FILES)  # through the settings file's grant to one of its roles
        assert not moderator.can(Capability.TRAIN)

        filer = await _message_caller(gw, FILE_MEMBER)
        assert not filer.is_admin
        assert filer.can(Capability.FILES)
        assert not filer.can(Capability.CURATE)
        assert filer.user_id == int(FILE_MEMBER["user"]["id"])
        assert (filer.guild_id, filer.channel_id) == (GUILD_ID, CHANNEL_ID)
        assert dict(filer.grants) == {
            "files": sorted([FILE_ROLE, BOTH_ROLE, GRANTED_ROLE]),
            "train": [TRAIN_ROLE],
            "curate": [GRANTED_ROLE],
        }
        # The reply channel's own settings, not the server's nor another channel's.
        assert filer.here.system_prompt == "Answer like a pirate."

        direct = await _message_caller(gw, ADMIN_MEMBER, guild=False)
        assert (direct.user_id, direct.guild_id, direct.channel_id) == (
            int(ADMIN_MEMBER["user"]["id"]),
            None,
            CHANNEL_ID,
        )
        assert not direct.is_admin
        assert not direct.can(Capability.TRAIN)

        # A message in a server without a member object (a webhook's, or the gateway left it out): no roles.
        payload = message_create("hello", author=ADMIN_MEMBER)
        del payload["member"]
        bare = await caller_from_message(
            gw.bot.entity_factory.deserialize_message(payload), gw.app.get(Settings), guild_settings
        )
        assert (bare.guild_id, bare.is_admin, bare.role_ids) == (GUILD_ID, False, frozenset())
        assert not bare.can(Capability.TRAIN)


@pytest.mark.asyncio
async def test_a_member_replying_in_a_restricted_channel_is_refused_and_an_administrator_answered(
    bot_settings: Settings, openai_fake: FakeOpenAI
) -> None:
    settings = bot_settings.model_copy(
        update={"permissions": {GUILD_ID: GuildPermissions(roles={Capability.CHAT: [TRAIN_ROLE]})}}
    )
    async with running_gateway_bot(settings, openai=openai_fake, guilds=[_gateway_guild()]) as gw:
        await gw.app.get(GuildSettingsRepository).update(GUILD_ID, CHANNEL_ID, system_prompt="Answer like a pirate.")
        openai_fake.reply_with("Arr, hello.")
        posted = f"/channels/{CHANNEL_ID}/messages"
        for member in (MODERATOR, ADMIN_MEMBER):
            payload = message_create(f"<@{BOT_USER_ID}> hello?", author=member)
            payload["mentions"] = [BOT_USER]
            before = len(gw.discord.calls_to("POST", posted))
            await gw.gateway.dispatch("MESSAGE_CREATE", payload)
            async with asyncio.timeout(30):
                while len(gw.discord.calls_to("POST", posted)) <= before:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        contents = [str((c.json or {}).get("content")) for c in gw.discord.calls_to("POST", posted)]
        assert contents[0] == "You may not chat with the model here."  # the moderator: no chat role, no admin
        await gw.discord.wait_for(
            lambda: any("Arr, hello." in str(m.get("content")) for m in gw.discord.messages.values()), timeout=30
        )
        [request] = [r for r in openai_fake.requests if r.path.endswith("/chat/completions")]
        assert request.json["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
