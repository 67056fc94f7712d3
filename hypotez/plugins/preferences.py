"""``/preferences``: what a member chooses for themselves, kept in the database and used wherever they talk with
the bot — the model that answers them by default (where that model may be used; elsewhere the channel's model
answers) and whether ``/chat`` answers them privately unless they say otherwise."""

from __future__ import annotations

import lightbulb

from hypotez.config import Capability
from hypotez.errors import InvalidInputError
from hypotez.ml.assistant import Assistant
from hypotez.permissions import Caller
from hypotez.plugins._autocomplete import model_autocomplete
from hypotez.plugins._checks import EVERYWHERE, require
from hypotez.storage.models import MemberPreferences
from hypotez.storage.repositories import PreferenceRepository

loader = lightbulb.Loader()

preferences = lightbulb.Group("preferences", "Your own defaults for talking with the bot", **EVERYWHERE)


def _describe(prefs: MemberPreferences, assistant: Assistant) -> str:
    model = f"`{assistant.label(prefs.chat_model)}`" if prefs.chat_model else "the channel's (no choice made)"
    private = {None: "no (no choice made)", True: "yes", False: "no"}[prefs.private_replies]
    return f"Your preferences:\n- Model that answers you: {model}\n- Private answers to `/chat`: {private}"


@preferences.register
class PreferencesShow(
    lightbulb.SlashCommand, name="show", description="Show your preferences", hooks=[require(Capability.CHAT)]
):
    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, prefs: PreferenceRepository, assistant: Assistant
    ) -> None:
        await ctx.respond(_describe(await prefs.get(caller.user_id), assistant), ephemeral=True)


@preferences.register
class PreferencesSet(
    lightbulb.SlashCommand, name="set", description="Change your preferences", hooks=[require(Capability.CHAT)]
):
    model = lightbulb.string(
        "model", "The model that answers you by default", default=None, autocomplete=model_autocomplete
    )
    private = lightbulb.boolean("private", "Answer my /chat privately unless I say otherwise", default=None)

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, prefs: PreferenceRepository, assistant: Assistant
    ) -> None:
        if self.model is None and self.private is None:
            raise InvalidInputError("Give `model`, `private` or both; `/preferences clear` forgets them.")
        changes: dict[str, object] = {}
        if self.model is not None:
            # Only a model that may be used here can be chosen; in other places it answers where allowed.
            changes["chat_model"] = await assistant.require_model(caller.guild_id, self.model)
        if self.private is not None:
            changes["private_replies"] = self.private
        updated = await prefs.update(caller.user_id, **changes)
        await ctx.respond("Saved. " + _describe(updated, assistant), ephemeral=True)


@preferences.register
class PreferencesClear(
    lightbulb.SlashCommand,
    name="clear",
    description="Forget your preferences (the defaults apply again)",
    hooks=[require(Capability.CHAT)],
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, prefs: PreferenceRepository) -> None:
        await prefs.clear(caller.user_id)
        await ctx.respond("Your preferences are cleared: the channel's model answers you, in public.", ephemeral=True)


loader.command(preferences)
