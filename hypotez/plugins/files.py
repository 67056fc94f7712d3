"""``/getfile`` (the original ``getfile``) and ``/archive`` (the original ``archive_files``), each confined to the
caller's server's area of the data directory (``guilds/<guild id>/``): another server's files, and the operator's
(training jobs, local models, the database), are never served, listed, archived or deleted."""

from __future__ import annotations

import asyncio

import lightbulb

from hypotez.config import Capability, Settings
from hypotez.permissions import Caller
from hypotez.plugins._attachments import files_for, send_limit
from hypotez.plugins._autocomplete import area_autocomplete
from hypotez.plugins._checks import STAFF_IN_SERVERS, guild_area, require_in_server
from hypotez.storage.files import DataDirectory, human_size
from hypotez.storage.repositories import AuditLog

loader = lightbulb.Loader()


async def _files(area: DataDirectory, typed: str) -> list[str]:
    return await asyncio.to_thread(area.suggest_files, typed)


async def _directories(area: DataDirectory, typed: str) -> list[str]:
    return await asyncio.to_thread(area.suggest_directories, typed)


async def _archives(area: DataDirectory, typed: str) -> list[str]:
    return [a.name for a in await area.archives() if typed.lower() in a.name.lower()]


#: Files in the server's area whose path contains what was typed.
file_autocomplete = area_autocomplete(Capability.FILES, _files)
#: Directories in the server's area (its archive area excepted).
directory_autocomplete = area_autocomplete(Capability.CURATE, _directories)
#: The server's archives, newest first.
archive_autocomplete = area_autocomplete(Capability.CURATE, _archives)


@loader.command
class GetFile(
    lightbulb.SlashCommand,
    name="getfile",
    description="Send a file from this server's area of the bot's data directory",
    hooks=[require_in_server(Capability.FILES)],
    **STAFF_IN_SERVERS,
):
    path = lightbulb.string(
        "path", "Path inside this server's files", min_length=1, max_length=500, autocomplete=file_autocomplete
    )

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, settings: Settings, data_dir: DataDirectory, audit: AuditLog
    ) -> None:
        area = guild_area(data_dir, caller)
        found = await area.file(self.path, limit=send_limit(ctx.interaction, settings))
        await ctx.defer(ephemeral=True)
        await audit.record(
            "file.get",
            guild_id=caller.guild_id,
            actor_id=caller.user_id,
            target=found.relative[:300],
            details={"size": found.size},
        )
        await ctx.respond(
            f"`{found.relative}` ({human_size(found.size)})", attachments=files_for([found.path]), ephemeral=True
        )


archive = lightbulb.Group("archive", "Zip archives in this server's archive/ area", **STAFF_IN_SERVERS)


@archive.register
class ArchiveCreate(
    lightbulb.SlashCommand,
    name="create",
    description="Zip a directory into archive/ (with a manifest) and remove the originals once verified",
    hooks=[require_in_server(Capability.CURATE)],
):
    directory = lightbulb.string(
        "directory",
        "Directory inside this server's files",
        min_length=1,
        max_length=300,
        autocomplete=directory_autocomplete,
    )
    attach = lightbulb.boolean("attach", "Attach the archive to the reply", default=False)

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, settings: Settings, data_dir: DataDirectory, audit: AuditLog
    ) -> None:
        area = guild_area(data_dir, caller)
        directory = await area.directory(self.directory)
        await ctx.defer(ephemeral=True)
        info = await area.archive_directory(directory)
        await audit.record(
            "archive.create",
            guild_id=caller.guild_id,
            actor_id=caller.user_id,
            target=info.source[:300],
            details={"archive": info.name, "files": len(info.files), "kept": info.kept},
        )
        text = (
            f"Archived `{info.source}` as `archive/{info.name}`: {len(info.files)} files, {human_size(info.size)}, "
            "checked against its manifest; the originals were removed."
        )
        if info.kept:
            shown = ", ".join(f"`{k}`" for k in info.kept[:10])
            text += f"\nLeft in place (changed while archiving): {shown}{' …' if len(info.kept) > 10 else ''}"
        limit = send_limit(ctx.interaction, settings)
        if self.attach and info.size <= limit:
            await ctx.respond(text[:2000], attachments=files_for([info.path]), ephemeral=True)
            return
        if self.attach:
            text += f"\nIt is too large to attach (limit {human_size(limit)})."
        await ctx.respond(text[:2000], ephemeral=True)


@archive.register
class ArchiveList(
    lightbulb.SlashCommand,
    name="list",
    description="This server's archives, newest first",
    hooks=[require_in_server(Capability.CURATE)],
):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller, data_dir: DataDirectory) -> None:
        infos = await guild_area(data_dir, caller).archives()
        if not infos:
            await ctx.respond("There are no archives yet. Make one with `/archive create`.", ephemeral=True)
            return
        lines = [
            f"• `{i.name}`: {len(i.files)} files, {human_size(i.size)}, from `{i.source}`, "
            f"{i.created_at:%Y-%m-%d %H:%M} UTC"
            for i in infos
        ]
        text = "\n".join(lines)
        if len(text) > 1900:
            text = text[:1900].rsplit("\n", 1)[0] + f"\n… {len(infos)} archives in all."
        await ctx.respond(text, ephemeral=True)


@archive.register
class ArchiveGet(
    lightbulb.SlashCommand,
    name="get",
    description="Attach one of this server's archives",
    hooks=[require_in_server(Capability.CURATE)],
):
    name = lightbulb.string("name", "The archive", min_length=1, max_length=200, autocomplete=archive_autocomplete)

    @lightbulb.invoke
    async def invoke(
        self, ctx: lightbulb.Context, caller: Caller, settings: Settings, data_dir: DataDirectory, audit: AuditLog
    ) -> None:
        path = await asyncio.to_thread(guild_area(data_dir, caller).archive_path, self.name)
        size = (await asyncio.to_thread(path.stat)).st_size
        limit = send_limit(ctx.interaction, settings)
        if size > limit:
            await ctx.respond(
                f"`{self.name}` is {human_size(size)}; Discord accepts at most {human_size(limit)} here. "
                f"It is in this server's files as `archive/{self.name}`.",
                ephemeral=True,
            )
            return
        await ctx.defer(ephemeral=True)
        await audit.record(
            "archive.get",
            guild_id=caller.guild_id,
            actor_id=caller.user_id,
            target=self.name[:300],
            details={"size": size},
        )
        await ctx.respond(f"`{self.name}` ({human_size(size)})", attachments=files_for([path]), ephemeral=True)


loader.command(archive)
