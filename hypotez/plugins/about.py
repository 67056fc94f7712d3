"""``/about``: what this bot runs on."""

from __future__ import annotations

import hikari
import lightbulb

import hypotez
from hypotez.config import Capability, Settings
from hypotez.permissions import Caller
from hypotez.plugins._checks import EVERYWHERE, require
from hypotez.storage import Database
from hypotez.voice.stt import Transcriber

loader = lightbulb.Loader()


@loader.command
class About(
    lightbulb.SlashCommand,
    name="about",
    description="What this bot runs on",
    hooks=[require(Capability.CHAT)],
    **EVERYWHERE,
):
    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        caller: Caller,
        settings: Settings,
        db: Database,
        transcriber: Transcriber,
    ) -> None:
        model = caller.here.active_model or settings.chat_model
        whisper = settings.whisper_model + (" (loaded)" if transcriber.loaded else "")
        embed = (
            hikari.Embed(
                title=f"hypotez {hypotez.__version__}", description="A bot that trains the model it talks with."
            )
            .add_field("Chat model", f"`{model}`", inline=True)
            .add_field("Storage", db.dialect, inline=True)
            .add_field("Whisper model", f"`{whisper}`", inline=True)
            .add_field("Voice transport", settings.voice_transport, inline=True)
        )
        await ctx.respond(embed=embed, ephemeral=True)
