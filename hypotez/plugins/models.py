"""``/model``: which model the bot talks with in a server or channel, and the models it can use."""

from __future__ import annotations

import lightbulb

from hypotez.config import Capability
from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.ml.assistant import Assistant
from hypotez.permissions import Caller
from hypotez.plugins._autocomplete import model_autocomplete
from hypotez.plugins._checks import EVERYWHERE, require
from hypotez.storage.repositories import AuditLog, GuildSettingsRepository

loader = lightbulb.Loader()


model_group = lightbulb.Group("model", "Which model the bot talks with", **EVERYWHERE)


@model_group.register
class ModelUse(
    lightbulb.SlashCommand,
    name="use",
    description="Switch this server's (or channel's) chat model",
    hooks=[require(Capability.TRAIN)],
):
    name = lightbulb.string("name", "Model", autocomplete=model_autocomplete, max_length=300)
    channel = lightbulb.boolean("channel", "Only in this channel (default: the whole server)", default=False)

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        assistant: Assistant,
        guild_settings: GuildSettingsRepository,
        audit: AuditLog,
    ) -> None:
        if caller.guild_id is None:
            raise InvalidInputError("Models are chosen per server; use this command in a server.")
        await ctx.defer(ephemeral=True)
        if self.name not in await assistant.model_choices(caller.guild_id):
            raise NotFoundError(
                "model", self.name, f"`{self.name}` is not a model this bot can use. Pick one from the list."
            )
        scope = caller.channel_id if self.channel else 0
        await guild_settings.update(caller.guild_id, scope, active_model=self.name)
        await audit.record(
            "model.use", guild_id=caller.guild_id, actor_id=caller.user_id, target=self.name, details={"channel": scope}
        )
        where = "in this channel" if self.channel else "in this server"
        await ctx.respond(f"The bot now talks with `{self.name}` {where}.", ephemeral=True)


@model_group.register
class ModelList(
    lightbulb.SlashCommand, name="list", description="Base and trained models", hooks=[require(Capability.CHAT)]
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, assistant: Assistant) -> None:
        await ctx.defer(ephemeral=True)
        active = await assistant.active_model(caller.guild_id, caller.channel_id)
        trained = await assistant.registered_models(caller.guild_id)
        try:
            served = await assistant.backends.backend_models()
        except Exception:
            served = []
        # The backend serves every server's fine-tunes (one organisation): a server sees only its own, above.
        served = [m for m in served if not m.startswith("ft:")]
        lines = [f"Active here: `{active}`", "", "**Trained**"]
        lines += [
            f"`{m.name}` · {m.backend} · from `{m.base_model}`"
            + (f" · dataset #{m.dataset_id}" if m.dataset_id else "")
            + (f" · job #{m.job_id}" if m.job_id else "")
            for m in trained
        ] or ["none yet (`/train`)"]
        lines += [
            "",
            "**Base (served by the chat backend)**",
            ", ".join(f"`{m}`" for m in served[:40]) or "unavailable",
        ]
        await ctx.respond("\n".join(lines)[:2000], ephemeral=True)


loader.command(model_group)
