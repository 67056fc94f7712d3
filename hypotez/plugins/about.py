"""``/about``: what this bot runs on."""

from __future__ import annotations

import hikari
import lightbulb

import hypotez
from hypotez.config import Capability, Settings
from hypotez.ml.chat import model_label
from hypotez.permissions import Caller
from hypotez.plugins._checks import EVERYWHERE, require
from hypotez.storage import Database
from hypotez.voice.stt import Transcriber
from hypotez.voice.transport.base import VoicePort

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
        port: VoicePort,
    ) -> None:
        # Models are shown by the names members know (an alias, a directory's last part): never a server's path.
        model = model_label(caller.here.active_model or settings.chat_model, settings.model_aliases)
        whisper = model_label(settings.whisper_model, settings.model_aliases) + (
            " (loaded)" if transcriber.loaded else ""
        )
        caps = port.capabilities
        if not settings.voice_enabled:
            transport = "off"
        elif not caps.can_connect:
            transport = f"{caps.name} (no voice channels)"
        else:
            transport = f"{caps.name} ({', '.join(caps.encryption_modes[:1])}{', DAVE' if caps.dave else ''})"
        embed = (
            hikari.Embed(
                title=f"hypotez {hypotez.__version__}", description="A bot that trains the model it talks with."
            )
            .add_field("Chat model", f"`{model}`", inline=True)
            .add_field("Storage", db.dialect, inline=True)
            .add_field("Whisper model", f"`{whisper}`" if settings.voice_enabled else "off", inline=True)
            .add_field("Voice transport", transport, inline=True)
        )
        await ctx.respond(embed=embed, ephemeral=True)
