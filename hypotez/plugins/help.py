"""``/help [command]``: what hypotez does, the commands the caller may use where they ask (by capability, and only
those Discord offers there), a first-steps guide for the server's administrators, and each command in detail.

The list is read from the registered commands themselves — their names, descriptions, options and the capability
each one's check requires — so it never falls behind the commands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import hikari
import lightbulb

from hypotez.config import Capability
from hypotez.errors import NotFoundError
from hypotez.permissions import Caller
from hypotez.plugins._autocomplete import bounded
from hypotez.plugins._checks import EVERYWHERE, require

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

loader = lightbulb.Loader()

ABOUT: Final = (
    "**hypotez** is a bot that trains the model it talks with. Members chat with a language model, correct its "
    "wrong replies in place and rate them; curators review those corrections; trainers turn them into datasets, "
    "fine-tune a model, test it and switch the bot to it. Voice messages are transcribed, and the bot can speak "
    "in voice channels."
)

#: The order areas are listed in, by the capability their commands need.
AREAS: Final = (
    (Capability.CHAT, "Talk"),
    (Capability.CORRECT, "Correct"),
    (Capability.FEEDBACK, "Rate"),
    (Capability.VOICE, "Voice"),
    (Capability.CURATE, "Review"),
    (Capability.FILES, "Files"),
    (Capability.TRAIN, "Train and test"),
    (Capability.ADMIN, "Administer"),
)

FIRST_STEPS: Final = (
    "1. Pick the model that answers here: `/model list`, then `/model use`.\n"
    "2. Say who may do what: `/admin grant` (e.g. `curate` or `train` to a role); `/admin show` lists it.\n"
    "3. Set up review: `/review settings` (a review channel, approvals needed, trusted roles).\n"
    "4. Members chat (`/chat`) and correct wrong replies (✏️ or `/correct`); curators go through `/review next`.\n"
    "5. Train on what was approved: `/train dataset:corrections` (settings are chosen from the data); follow it "
    "with `/jobs status`.\n"
    "6. Check it learned with `/test run`, then switch with `/model use`."
)

#: Commands worth reading next, by command name.
SEE_ALSO: Final[dict[str, tuple[str, ...]]] = {
    "chat": ("correct", "preferences", "usage", "prompt"),
    "correct": ("review", "feedback"),
    "feedback": ("review",),
    "review": ("dataset", "train"),
    "dataset": ("train", "test"),
    "train": ("jobs", "test", "model"),
    "jobs": ("train", "model"),
    "test": ("model", "arena"),
    "model": ("test", "arena"),
    "arena": ("review", "model"),
    "admin": ("review", "audit"),
    "transcribe": ("vocabulary", "voice"),
    "voice": ("say", "transcribe"),
}


@dataclass(frozen=True, slots=True)
class CommandInfo:
    """One invocable command as the help shows it."""

    name: str  # the qualified name: "chat", "dataset build", "Correct this reply"
    description: str
    capability: Capability | None
    kind: hikari.CommandType
    contexts: frozenset[hikari.ApplicationContextType]
    options: tuple[tuple[str, str, bool], ...]  # (name, description, required)

    @property
    def root(self) -> str:
        return self.name.split(" ")[0]

    @property
    def shown(self) -> str:
        return f"`/{self.name}`" if self.kind is hikari.CommandType.SLASH else f"**{self.name}** (message menu)"


def _data(command: Any) -> Any:
    # lightbulb keeps a command's declaration (hooks, options, contexts) on this attribute and offers no public
    # accessor for the hooks; it is read-only here.
    return getattr(command, "_command_data")  # noqa: B009


def _capability(hooks: Iterable[Any]) -> Capability | None:
    for hook in hooks:
        name = str(getattr(hook, "name", ""))
        if name.startswith("require_"):
            value = name.removeprefix("require_").removesuffix("_in_server")
            try:
                return Capability(value)
            except ValueError:
                continue
    return None


def _leaves(command: Any, contexts: frozenset[hikari.ApplicationContextType]) -> list[CommandInfo]:
    if isinstance(command, lightbulb.Group | lightbulb.SubGroup):
        if isinstance(command, lightbulb.Group):
            contexts = frozenset(command.contexts) if command.contexts is not hikari.UNDEFINED else contexts
        found: list[CommandInfo] = []
        for sub in command.subcommands.values():
            found += _leaves(sub, contexts)
        return found
    data = _data(command)
    if data.contexts is not hikari.UNDEFINED:
        contexts = frozenset(data.contexts)
    options = tuple(
        (str(o.name), str(o.description), bool(o.default is hikari.UNDEFINED)) for o in data.options.values()
    )
    return [
        CommandInfo(
            name=str(data.qualified_name),
            description=str(data.description or ""),
            capability=_capability(data.hooks),
            kind=data.type,
            contexts=contexts,
            options=options,
        )
    ]


def commands_of(client: lightbulb.Client) -> list[CommandInfo]:
    """Every invocable command registered with ``client``, sorted by name."""
    everywhere = frozenset(EVERYWHERE["contexts"])
    found: list[CommandInfo] = []
    for command in client.registered_commands:
        found += _leaves(command, everywhere)
    return sorted(found, key=lambda c: (c.kind is not hikari.CommandType.SLASH, c.name.lower()))


def usable(commands: Sequence[CommandInfo], caller: Caller) -> list[CommandInfo]:
    """The commands ``caller`` may use where they are: offered there by Discord and allowed by the capability."""
    where = hikari.ApplicationContextType.GUILD if caller.guild_id is not None else hikari.ApplicationContextType.BOT_DM
    return [c for c in commands if where in c.contexts and (c.capability is None or caller.can(c.capability))]


def _line(command: CommandInfo) -> str:
    text = command.description or command.name
    return f"{command.shown} — {text[:60]}"


def _chunks(lines: Sequence[str], limit: int) -> list[str]:
    """``lines`` joined into as few texts of at most ``limit`` characters as they fit in (an embed field's limit)."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        if current and len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line[:limit]
    if current:
        chunks.append(current)
    return chunks


def overview(commands: Sequence[CommandInfo], caller: Caller, *, http_mode: bool) -> list[hikari.Embed]:
    """The answer to a bare ``/help``: what hypotez does, the caller's commands by area, the first steps for
    administrators (in a server, to those who administer it)."""
    mine = usable(commands, caller)
    intro = ABOUT
    if http_mode:
        intro += (
            "\n\nThis bot runs on HTTP interactions: it sees commands and buttons only, so replies to it, mentions, "
            "messages in its threads and direct messages are not answered — use `/chat` (it continues a thread's "
            "conversation in a thread)."
        )
    else:
        intro += (
            "\n\nBesides `/chat`: reply to one of its answers, mention it, write in a thread it opened, or send it a "
            "direct message."
        )
    main = hikari.Embed(title="hypotez — help", description=intro)
    for capability, title in AREAS:
        lines = [_line(c) for c in mine if c.capability is capability]
        for number, chunk in enumerate(_chunks(lines, 1024)):
            main.add_field(title if number == 0 else f"{title} (continued)", chunk)
    main.set_footer("/help command:<name> shows a command's options. You see only what you may use here.")
    embeds = [main]
    if caller.guild_id is not None and caller.can(Capability.ADMIN):
        embeds.append(hikari.Embed(title="First steps for administrators", description=FIRST_STEPS))
    return embeds


def details(command: CommandInfo, commands: Sequence[CommandInfo]) -> hikari.Embed:
    """One command: what it does, who may use it, where, its options and what to read next."""
    embed = hikari.Embed(title=command.shown.strip("`*"), description=command.description or None)
    needs = f"the `{command.capability.value}` capability" if command.capability else "nothing"
    places: list[str] = []
    if hikari.ApplicationContextType.GUILD in command.contexts:
        places.append("servers")
    if hikari.ApplicationContextType.BOT_DM in command.contexts:
        places.append("direct messages")
    embed.add_field("Who and where", f"Needs {needs}; works in {' and '.join(places) or 'servers'}.")
    if command.options:
        lines = [f"`{name}`{'' if required else ' (optional)'} — {text}" for name, text, required in command.options]
        embed.add_field("Options", "\n".join(lines)[:1024])
    groups = sorted({c.root for c in commands if c.root in SEE_ALSO.get(command.root, ())})
    if groups:
        embed.add_field("See also", " · ".join(f"`/{name}`" for name in groups))
    return embed


async def _help_names(ctx: lightbulb.AutocompleteContext[str], caller: Caller = lightbulb.di.INJECTED) -> None:
    typed = str(ctx.focused.value or "").strip().lower().lstrip("/")
    names = [c.name for c in usable(commands_of(ctx.client), caller) if typed in c.name.lower()]
    await ctx.respond([hikari.impl.AutocompleteChoiceBuilder(name=n[:100], value=n[:100]) for n in names[:25]])


help_autocomplete = bounded(_help_names)


@loader.command
class Help(
    lightbulb.SlashCommand,
    name="help",
    description="What hypotez does and the commands you can use here",
    hooks=[require(Capability.CHAT)],
    **EVERYWHERE,
):
    command = lightbulb.string(
        "command", "A command to explain", default=None, autocomplete=help_autocomplete, max_length=100
    )

    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, caller: Caller) -> None:
        commands = commands_of(ctx.client)
        if self.command is None:
            http_mode = isinstance(getattr(ctx.client, "app", None), hikari.RESTBot)
            await ctx.respond(embeds=overview(commands, caller, http_mode=http_mode), ephemeral=True)
            return
        wanted = self.command.strip().lstrip("/").lower()
        found = next((c for c in usable(commands, caller) if c.name.lower() == wanted), None)
        if found is None:
            raise NotFoundError(
                "command",
                self.command,
                f"There is no command `/{wanted[:60]}` that you can use here. `/help` lists those you can.",
            )
        await ctx.respond(embed=details(found, commands), ephemeral=True)
