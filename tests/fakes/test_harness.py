"""The offline Discord harness drives a real RESTBot + lightbulb 3 + miru 4 end to end.

The mini bot here is self-contained (not the hypotez app): a slash command with typed options and
autocomplete, an attachment option, a deferred command with a file follow-up, a message context-menu command
that opens a miru modal, and a persistent miru button view.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING

import aiohttp
import hikari
import lightbulb
import miru
import pytest
import pytest_asyncio

from tests.fakes.botkit import OfflineBot, install_miru, offline_bot
from tests.fakes.interactions import (
    ADMIN_MEMBER,
    APP_ID,
    CHANNEL_ID,
    DEFAULT_MEMBER,
    DEFAULT_USER,
    GUILD_ID,
    Attachment,
    ChannelRef,
    DiscordWouldRejectError,
    RoleRef,
    UserRef,
    autocomplete,
    button,
    message_command,
    message_payload,
    ping,
    slash,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

FRUITS = ("apple", "apricot", "banana", "cherry")


async def suggest_fruit(ctx: lightbulb.AutocompleteContext[str]) -> None:
    typed = str(ctx.focused.value or "")
    await ctx.respond([fruit for fruit in FRUITS if fruit.startswith(typed)])


class Echo(lightbulb.SlashCommand, name="echo", description="Repeat some text"):
    text = lightbulb.string("text", "What to repeat", autocomplete=suggest_fruit)
    times = lightbulb.integer("times", "How many times", default=1)
    ratio = lightbulb.number("ratio", "Any number", default=1.0)
    secret = lightbulb.boolean("secret", "Only you see the reply", default=False)

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context) -> None:
        await ctx.respond(f"{' '.join([self.text] * self.times)} x{self.ratio}", ephemeral=self.secret)


class Inspect(lightbulb.SlashCommand, name="inspect", description="Describe a file"):
    file = lightbulb.attachment("file", "The file")

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context) -> None:
        await ctx.respond(f"{self.file.filename} {self.file.size} bytes {self.file.media_type}")


class Slow(lightbulb.SlashCommand, name="slow", description="Defer, then send a report file"):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context) -> None:
        await ctx.defer()
        await ctx.respond("done", attachment=hikari.Bytes(b"report body", "report.txt"))


admin = lightbulb.Group("admin", "Admin tools")
admin_users = admin.subgroup("users", "User tools")


@admin_users.register
class Describe(lightbulb.SlashCommand, name="describe", description="Describe a member"):
    who = lightbulb.user("who", "Who")
    where = lightbulb.channel("where", "Where")
    role = lightbulb.role("role", "Role")

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context) -> None:
        is_admin = ctx.member is not None and bool(ctx.member.permissions & hikari.Permissions.ADMINISTRATOR)
        await ctx.respond(f"{self.who.username} in {self.where.name} as {self.role.name}, caller admin={is_admin}")


class AskModal(miru.Modal, title="Ask"):
    question = miru.TextInput(label="Question")

    async def callback(self, ctx: miru.ModalContext) -> None:
        await ctx.edit_response(f"Asked: {self.question.value}")


class PingView(miru.View):
    """Persistent: no timeout and explicit custom ids, so it survives restarts unbound to a message."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @miru.button(label="Ping", custom_id="harness:ping")
    async def ping_button(self, ctx: miru.ViewContext, button: miru.Button) -> None:
        await ctx.edit_response(f"Pong for {ctx.user.username}")

    @miru.button(label="Report", custom_id="harness:report")
    async def report_button(self, ctx: miru.ViewContext, button: miru.Button) -> None:
        report = hikari.Bytes(b"a,b\n1,2\n", "report.csv", mimetype="text/csv")
        await ctx.respond("report attached", attachment=report, flags=hikari.MessageFlag.EPHEMERAL)

    @miru.button(label="Ask", custom_id="harness:ask")
    async def ask_button(self, ctx: miru.ViewContext, button: miru.Button) -> None:
        await ctx.respond_with_modal(AskModal())


class Panel(lightbulb.SlashCommand, name="panel", description="Post the ping panel"):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context) -> None:
        await ctx.respond("Panel", components=PingView())


class EditModal(miru.Modal, title="Edit text"):
    def __init__(self, original: str) -> None:
        super().__init__(timeout=30)
        self.text = miru.TextInput(label="Text", value=original, style=hikari.TextInputStyle.PARAGRAPH, required=True)
        self.add_item(self.text)

    async def callback(self, ctx: miru.ModalContext) -> None:
        await ctx.respond(f"Edited: {self.text.value}", flags=hikari.MessageFlag.EPHEMERAL)


class EditText(lightbulb.MessageCommand, name="Edit text"):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, miru_client: miru.Client) -> None:
        modal = EditModal(self.target.content or "")
        await ctx.respond_with_modal(modal.title, modal.custom_id, components=modal)
        miru_client.start_modal(modal)


@dataclasses.dataclass
class MiniBot:
    harness: OfflineBot
    commands: lightbulb.Client
    components: miru.Client


def build_mini_bot(bot: hikari.RESTBot, *, sync_commands: bool = False) -> tuple[lightbulb.Client, miru.Client]:
    commands = lightbulb.client_from_app(bot, sync_commands=sync_commands)
    for command in (Echo, Inspect, Slow, Panel, EditText, admin):
        commands.register(command)
    components = install_miru(bot)  # after lightbulb: it unsets the listeners lightbulb claimed
    components.start_view(PingView(), bind_to=None)
    commands.di.registry_for(lightbulb.di.Contexts.DEFAULT).register_value(miru.Client, components)
    bot.add_startup_callback(commands.start)
    bot.add_shutdown_callback(commands.stop)
    return commands, components


@pytest_asyncio.fixture
async def mini() -> AsyncIterator[MiniBot]:
    built: list[tuple[lightbulb.Client, miru.Client]] = []

    def setup(bot: hikari.RESTBot) -> None:
        built.append(build_mini_bot(bot))

    async with offline_bot(setup) as harness:
        commands, components = built[0]
        yield MiniBot(harness, commands, components)


@pytest.mark.asyncio
async def test_ping_gets_pong(mini: MiniBot) -> None:
    result = await mini.harness.client.send(ping())

    assert result.status == 200
    assert result.body_json == {"type": 1}


@pytest.mark.asyncio
async def test_bad_signatures_are_rejected(mini: MiniBot) -> None:
    client = mini.harness.client
    body = json.dumps(slash("echo", {"text": "a"})).encode()
    timestamp = str(int(time.time()))
    signature = client.sign(body, timestamp)

    tampered = await client.send_raw(body.replace(b'"a"', b'"b"'), signature, timestamp)
    wrong_key = await client.send_raw(body, "00" * 64, timestamp)
    missing = await client.send_raw(body, "", timestamp)

    assert [tampered.status, wrong_key.status, missing.status] == [400, 400, 400]
    assert mini.harness.rest.calls == []


@pytest.mark.asyncio
async def test_slash_command_reply_and_ephemeral_flag(mini: MiniBot) -> None:
    public, private = await mini.harness.client.send_many(
        slash("echo", {"text": "hi", "times": 2, "ratio": 0.5}),
        slash("echo", {"text": "psst", "secret": True}, user=ADMIN_MEMBER),
    )

    # lightbulb answers over REST: hikari sends 204 and the response is the recorded callback.
    assert public.status == 204
    assert not public.answered_in_body
    assert public.callback_call is not None
    assert public.callback_call.query == {"with_response": "true"}
    assert public.response_type == 4
    assert public.content == "hi hi x0.5"
    assert not public.ephemeral
    assert private.content == "psst x1.0"
    assert private.ephemeral

    stored = private.original_message
    assert stored is not None
    message = mini.harness.bot.entity_factory.deserialize_message(stored)
    assert message.content == "psst x1.0"
    assert message.flags & hikari.MessageFlag.EPHEMERAL
    assert mini.harness.rest.message_texts() == ["hi hi x0.5", "psst x1.0"]


@pytest.mark.asyncio
async def test_subcommand_group_with_user_channel_and_role_options(mini: MiniBot) -> None:
    options = {
        "who": UserRef(DEFAULT_USER, DEFAULT_MEMBER),
        "where": ChannelRef(CHANNEL_ID + 1, "lab"),
        "role": RoleRef(GUILD_ID + 7, "mods"),
    }

    as_admin, as_member = await mini.harness.client.send_many(
        slash("admin", options, group="users", subcommand="describe", user=ADMIN_MEMBER),
        slash("admin", options, group="users", subcommand="describe"),
    )

    assert as_admin.content == "alice in lab as mods, caller admin=True"
    assert as_member.content == "alice in lab as mods, caller admin=False"


@pytest.mark.asyncio
async def test_attachment_option_is_resolved_and_downloadable(mini: MiniBot) -> None:
    rest = mini.harness.rest
    notes = rest.host(Attachment("notes.txt", b"hello", "text/plain"))

    result = await mini.harness.client.send(slash("inspect", {"file": notes}))

    assert result.content == "notes.txt 5 bytes text/plain"
    assert notes.url is not None
    async with aiohttp.ClientSession() as session, session.get(notes.url) as response:
        assert await response.read() == b"hello"


@pytest.mark.asyncio
async def test_autocomplete_offers_matching_choices(mini: MiniBot) -> None:
    result = await mini.harness.client.send(autocomplete("echo", {"text": "ap", "times": 2}, focused="text"))

    assert result.response_type == 8
    assert result.choices == [{"name": "apple", "value": "apple"}, {"name": "apricot", "value": "apricot"}]


@pytest.mark.asyncio
async def test_context_menu_opens_modal_prefilled_with_the_message(mini: MiniBot) -> None:
    target = message_payload("original words", author_bot=False)

    result = await mini.harness.client.send(message_command("Edit text", target))

    modal = result.modal
    assert modal is not None
    assert modal.title == "Edit text"
    assert modal.input("Text").value == "original words"
    assert modal.input("Text").style == hikari.TextInputStyle.PARAGRAPH


@pytest.mark.asyncio
async def test_modal_submission_is_handled_by_miru(mini: MiniBot) -> None:
    client = mini.harness.client
    opened = await client.send(message_command("Edit text", message_payload("draft", author_bot=True)))
    modal = opened.modal
    assert modal is not None

    submitted = await client.send(modal.submit({"Text": "final words"}))

    # miru answers in the HTTP body.
    assert submitted.status == 200
    assert submitted.answered_in_body
    assert submitted.response_type == 4
    assert submitted.content == "Edited: final words"
    assert submitted.ephemeral


@pytest.mark.asyncio
async def test_persistent_button_updates_its_message(mini: MiniBot) -> None:
    client, rest = mini.harness.client, mini.harness.rest
    posted = await client.send(slash("panel"))
    panel = posted.original_message
    assert panel is not None
    assert panel["components"][0]["components"][0]["custom_id"] == "harness:ping"

    pressed = await client.send(button("harness:ping", panel))

    assert pressed.status == 200
    assert pressed.response_type == 7
    assert pressed.content == "Pong for alice"
    stored = rest.messages[int(panel["id"])]
    assert stored["content"] == "Pong for alice"
    assert stored["components"] == panel["components"]  # an UPDATE_MESSAGE without components keeps them


@pytest.mark.asyncio
async def test_button_reply_with_a_file_comes_as_multipart_body(mini: MiniBot) -> None:
    client, rest = mini.harness.client, mini.harness.rest
    panel = (await client.send(slash("panel"))).original_message
    assert panel is not None

    result = await client.send(button("harness:report", panel))

    assert result.status == 200
    assert result.content_type == "multipart/form-data"
    assert result.content == "report attached"
    assert result.ephemeral
    assert [(f.name, f.filename, f.content, f.content_type) for f in result.files] == [
        ("files[0]", "report.csv", b"a,b\n1,2\n", "text/csv")
    ]
    stored = result.original_message
    assert stored is not None
    assert stored["id"] != panel["id"]
    assert [a["filename"] for a in stored["attachments"]] == ["report.csv"]
    assert rest.message_texts() == ["Panel", "report attached"]


@pytest.mark.asyncio
async def test_deferred_response_then_file_follow_up(mini: MiniBot) -> None:
    rest = mini.harness.rest
    result = await mini.harness.client.send(slash("slow"))

    assert result.response_type == 5
    (follow_up,) = await result.wait_for_followups(1)
    assert follow_up.method == "POST"
    assert follow_up.json is not None
    assert follow_up.json["content"] == "done"
    assert follow_up.json["attachments"] == [{"id": 0, "filename": "report.txt"}]
    assert [(f.name, f.filename, f.content) for f in follow_up.files] == [("files[0]", "report.txt", b"report body")]
    # The first follow-up after a defer replaces the "thinking..." original.
    original = result.original_message
    assert original is not None
    assert original["content"] == "done"
    assert original["flags"] == 0
    assert original["attachments"][0]["filename"] == "report.txt"
    async with aiohttp.ClientSession() as session, session.get(original["attachments"][0]["url"]) as response:
        assert await response.read() == b"report body"
    assert rest.message_texts() == ["done"]


@pytest.mark.asyncio
async def test_responses_discord_would_reject_are_caught(mini: MiniBot) -> None:
    client, bot = mini.harness.client, mini.harness.bot
    panel = (await client.send(slash("panel"))).original_message
    assert panel is not None

    # hikari 2.6.0's InteractionModalBuilder.build() nests each component as [payload, files]: a modal that
    # miru returns in the HTTP body is malformed, and Discord would fail the interaction.
    with pytest.raises(DiscordWouldRejectError, match="must be an object"):
        await client.send(button("harness:ask", panel))
    # Over REST the fake answers 400 Invalid Form Body, as Discord does.
    with pytest.raises(hikari.BadRequestError):
        await bot.rest.create_message(CHANNEL_ID, "x" * 2001)


@pytest.mark.asyncio
async def test_rate_limited_callback_is_retried(mini: MiniBot) -> None:
    rest = mini.harness.rest
    rest.fail_next(429, "/callback", retry_after=0.01)

    result = await mini.harness.client.send(slash("echo", {"text": "again"}))

    assert result.content == "again x1.0"
    assert [call.status for call in rest.calls_to("POST", "/callback")] == [429, 200]


@pytest.mark.asyncio
async def test_channel_messages_round_trip_through_hikari(mini: MiniBot) -> None:
    bot, rest = mini.harness.bot, mini.harness.rest

    sent = await bot.rest.create_message(CHANNEL_ID, "hello", attachment=hikari.Bytes(b"abc", "a.txt"))
    edited = await bot.rest.edit_message(CHANNEL_ID, sent.id, "hello again")
    fetched = await bot.rest.fetch_message(CHANNEL_ID, sent.id)
    channel = await bot.rest.fetch_channel(CHANNEL_ID)
    await bot.rest.delete_message(CHANNEL_ID, sent.id)
    with pytest.raises(hikari.NotFoundError):
        await bot.rest.fetch_message(CHANNEL_ID, sent.id)
    with pytest.raises(hikari.NotFoundError):
        await bot.rest.fetch_invite("nope")  # not implemented by the fake: Discord's 404 body

    assert sent.author.is_bot
    assert [a.filename for a in sent.attachments] == ["a.txt"]
    assert edited.content == fetched.content == "hello again"
    assert [a.filename for a in fetched.attachments] == ["a.txt"]  # kept: the edit did not list attachments
    assert isinstance(channel, hikari.GuildTextChannel)
    assert rest.calls[-1].status == 404
    assert rest.message_texts() == ["hello", "hello again"]
    assert rest.calls_to("POST", f"/channels/{CHANNEL_ID}/messages")[0].files[0].content == b"abc"


@pytest.mark.asyncio
async def test_command_sync_against_the_fake() -> None:
    built: list[tuple[lightbulb.Client, miru.Client]] = []

    def setup(bot: hikari.RESTBot) -> None:
        built.append(build_mini_bot(bot, sync_commands=True))

    async with offline_bot(setup) as harness:
        rest = harness.rest
        assert rest.calls_to("GET", "/oauth2/applications/@me")
        (put,) = rest.calls_to("PUT", f"/applications/{APP_ID}/commands")
        assert isinstance(put.json, list)
        assert {(c["name"], c.get("type", 1)) for c in put.json} == {
            ("admin", 1),
            ("echo", 1),
            ("inspect", 1),
            ("slow", 1),
            ("panel", 1),
            ("Edit text", 3),
        }
        assert {c["name"] for c in rest.commands[None].values()} == {
            "admin",
            "echo",
            "inspect",
            "slow",
            "panel",
            "Edit text",
        }

        result = await harness.client.send(slash("echo", {"text": "synced"}))
        assert result.content == "synced x1.0"


@pytest.mark.asyncio
async def test_an_initial_response_after_three_seconds_is_refused_like_discord(mini: MiniBot) -> None:
    rest = mini.harness.rest
    payload = slash("echo", {"text": "late"})
    rest.register_interaction(payload)
    rest.advance(3.2)  # the bot answers only after Discord stopped waiting
    with pytest.raises(hikari.NotFoundError) as refused:
        await mini.harness.bot.rest.create_interaction_response(
            int(payload["id"]), payload["token"], hikari.ResponseType.MESSAGE_CREATE, "too late"
        )
    assert refused.value.code == 10062
    assert [m.what for m in rest.missed_deadlines] == ["initial response"]
    with pytest.raises(AssertionError, match="late answers"):
        rest.assert_deadlines_met()  # what fails the test when the bot was late by itself
    rest.missed_deadlines.clear()


@pytest.mark.asyncio
async def test_the_interaction_token_expires_after_fifteen_minutes(mini: MiniBot) -> None:
    rest = mini.harness.rest
    result = await mini.harness.client.send(slash("echo", {"text": "hi"}))
    assert result.content is not None
    token = result.token
    assert token is not None
    follow_up = await mini.harness.bot.rest.execute_webhook(APP_ID, token, "still in time")
    assert follow_up.content == "still in time"
    rest.advance(15 * 60 + 1)
    with pytest.raises(hikari.UnauthorizedError):
        await mini.harness.bot.rest.execute_webhook(APP_ID, token, "too late")
    with pytest.raises(hikari.UnauthorizedError):
        await mini.harness.bot.rest.edit_interaction_response(APP_ID, token, "too late")
    assert [m.what for m in rest.missed_deadlines] == ["follow-up or edit with an expired token"] * 2
    rest.missed_deadlines.clear()
