"""``/model``: which model the bot talks with in a server or channel, and the models it can use."""

from __future__ import annotations

import lightbulb

from hypotez.config import Capability, Settings
from hypotez.errors import InvalidInputError, NotFoundError
from hypotez.ml.assistant import Assistant
from hypotez.permissions import Caller
from hypotez.plugins._autocomplete import model_autocomplete
from hypotez.plugins._checks import EVERYWHERE, require
from hypotez.plugins._errors import fit
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
        # Members give a model by the name they were shown (an alias, a path's last part) or its id.
        model = await assistant.resolve_model(caller.guild_id, self.name)
        if model is None or model not in await assistant.model_choices(caller.guild_id):
            raise NotFoundError(
                "model",
                self.name,
                f"`{assistant.label(self.name)}` is not a model this bot can use. Pick one from the list "
                "(`/model list`).",
            )
        scope = caller.channel_id if self.channel else 0
        await guild_settings.update(caller.guild_id, scope, active_model=model)
        await audit.record(
            "model.use", guild_id=caller.guild_id, actor_id=caller.user_id, target=model, details={"channel": scope}
        )
        where = "in this channel" if self.channel else "in this server"
        await ctx.respond(f"The bot now talks with `{assistant.label(model)}` {where}.", ephemeral=True)


@model_group.register
class ModelList(
    lightbulb.SlashCommand, name="list", description="Base and trained models", hooks=[require(Capability.CHAT)]
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, assistant: Assistant, settings: Settings) -> None:
        await ctx.defer(ephemeral=True)
        active = await assistant.active_model(caller.guild_id, caller.channel_id)
        trained = await assistant.registered_models(caller.guild_id)
        listing = await assistant.backends.listing()
        # The backend serves every server's fine-tunes (one organisation): a server sees only its own, above.
        served = [m for m in listing.models if not m.startswith("ft:")]
        label = assistant.label
        lines = [f"Active here: `{label(active)}`", "", "**Trained**"]
        lines += [
            f"`{m.name}` · {m.backend} · from `{label(m.base_model or '?')}`"
            + (f" · dataset #{m.dataset_id}" if m.dataset_id else "")
            + (f" · job #{m.job_id}" if m.job_id else "")
            for m in trained
        ] or ["none yet (`/train`)"]
        lines += ["", "**Base (served by the chat backend)**"]
        default = f"`{label(settings.chat_model)}`"
        if listing.error is not None:
            lines.append(
                f"unavailable right now: {listing.error} It is asked again in the background; the default "
                f"model is {default}."
            )
        elif not served:
            lines.append(
                f"none listed: the model service lists no model yet (some load a model only when first asked); "
                f"the default model is {default}."
            )
        else:
            lines.append(", ".join(f"`{n}`" for n in dict.fromkeys(label(m) for m in served[:40])))
        await ctx.respond(fit("\n".join(lines)), ephemeral=True)


loader.command(model_group)
