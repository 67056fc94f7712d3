"""The ``hypotez`` command: run the bot, check the installation, manage the database."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hypotez
from hypotez.config import Settings, load_settings
from hypotez.errors import ConfigError, HypotezError, InvalidInputError
from hypotez.logs import configure_logging

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def _secrets(settings: Settings) -> list[str]:
    values = [settings.discord_token, settings.openai_api_key, settings.database_url]
    return [v.get_secret_value() for v in values if v is not None]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hypotez", description="A Discord bot that trains the model it talks with.")
    parser.add_argument("--version", action="version", version=f"hypotez {hypotez.__version__}")
    parser.add_argument("--config", type=Path, help="TOML settings file (default: $HYPOTEZ_CONFIG or ./hypotez.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the bot (gateway by default)")
    run.add_argument(
        "--http", action="store_true", help="HTTP interactions mode (hikari.RESTBot) instead of the gateway"
    )
    run.add_argument("--host", help="HTTP mode: address to listen on (default HYPOTEZ_HTTP_HOST)")
    run.add_argument("--port", type=int, help="HTTP mode: port to listen on (default HYPOTEZ_HTTP_PORT)")

    doctor = sub.add_parser("doctor", help="check settings, database, models and tools")
    doctor.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="CHECK",
        help="skip a check, by the name it prints (config, data-directory, database, whisper-model, audio-tools, "
        "chat-backend); repeatable",
    )

    db = sub.add_parser("db", help="database migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply every pending migration")
    db_sub.add_parser("current", help="show the applied and the newest migration")

    transcribe = sub.add_parser("transcribe", help="print the transcript of an audio or video file")
    transcribe.add_argument("file", type=Path, help="ogg/opus, mp3, wav, m4a, webm, mp4... file")
    transcribe.add_argument("--language", help="language code (en, ru, ...); detected when omitted")
    transcribe.add_argument(
        "--model", help="whisper model size or local model directory (default HYPOTEZ_WHISPER_MODEL)"
    )
    transcribe.add_argument("--format", choices=("text", "srt", "vtt"), default="text", help="output format")
    return parser


def _run(settings: Settings, args: argparse.Namespace) -> int:
    import hikari

    from hypotez.app import assemble, build_bot

    bot = build_bot(settings, http=args.http, rest_url=settings.discord_rest_url)
    # One question to Discord before anything starts: a wrong token or no way to Discord is one sentence here,
    # not a traceback from the middle of start-up.
    asyncio.run(_check_discord(settings))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(assemble(bot, settings))
    try:
        if isinstance(bot, hikari.RESTBot):
            host, port = args.host or settings.http_host, args.port or settings.http_port
            try:
                bot.run(host=host, port=port)
            except OSError as exc:
                raise ConfigError(
                    f"HTTP mode cannot listen on {host}:{port} ({exc.strerror or exc}); pick another address or "
                    "port with --host/--port (HYPOTEZ_HTTP_HOST, HYPOTEZ_HTTP_PORT).",
                    setting="HYPOTEZ_HTTP_PORT",
                ) from None
        else:
            bot.run()
    except hikari.HikariError as exc:
        raise _discord_error(exc, settings) from None
    return 0


#: Where the bot's token and keys are found.
_PORTAL = "https://discord.com/developers/applications"


async def _check_discord(settings: Settings) -> None:
    """Ask Discord who the bot is (``GET /users/@me``) with the configured token: raises :class:`ConfigError`
    with one sentence when the token is refused or Discord cannot be reached."""
    import hikari

    assert settings.discord_token is not None  # build_bot checked it
    rest = hikari.RESTApp(url=settings.discord_rest_url, max_retries=0)
    await rest.start()
    try:
        async with rest.acquire(settings.discord_token.get_secret_value().strip(), hikari.TokenType.BOT) as client:
            await client.fetch_my_user()
    except hikari.HikariError as exc:
        raise _discord_error(exc, settings) from None
    finally:
        await rest.close()


def _discord_error(exc: Exception, settings: Settings) -> HypotezError:
    """One sentence for what Discord (or the way to it) answered."""
    import hikari

    where = settings.discord_rest_url or "discord.com"
    if isinstance(exc, hikari.UnauthorizedError):
        return ConfigError(
            "Discord rejected the bot token in HYPOTEZ_DISCORD_TOKEN (401 Unauthorized): copy it again (or reset "
            f"it) on the Bot page of your application at {_PORTAL}.",
            setting="HYPOTEZ_DISCORD_TOKEN",
        )
    if isinstance(exc, hikari.GatewayServerClosedConnectionError) and exc.code == 4014:
        return ConfigError(
            "Discord refused the Message Content intent the bot needs: turn on Message Content Intent on the Bot "
            f"page of your application at {_PORTAL}.",
        )
    if isinstance(exc, hikari.HTTPResponseError):
        return ConfigError(
            f"Discord answered the bot's start-up check with HTTP {int(exc.status)} ({exc.message or 'no reason'}); "
            "try again later.",
        )
    if isinstance(exc, hikari.HTTPError | hikari.GatewayConnectionError):
        reason = " ".join(str(exc).split())[:200]
        return ConfigError(
            f"Discord cannot be reached at {where} ({reason}): check this machine's network connection"
            + (" and HYPOTEZ_DISCORD_REST_URL." if settings.discord_rest_url else "."),
        )
    return ConfigError(f"Discord stopped the bot: {' '.join(str(exc).split())[:200]}.")


async def _doctor(settings: Settings, skip: Sequence[str]) -> int:
    from hypotez.doctor import run_checks

    results = await run_checks(settings, skip=skip)
    for result in results:
        print(result.line())
    return 0 if all(r.ok for r in results) else 1


async def _db(settings: Settings, command: str) -> int:
    from hypotez.storage import Database

    db = Database(settings.resolved_database_url)
    try:
        if command == "upgrade":
            await db.upgrade()
        state = await db.migration_state()
        print(f"{db.url_display}: at {state.current or 'nothing'}, newest {state.head}")
    finally:
        await db.close()
    return 0


#: Files at least this long (seconds) show a progress line on stderr even when it is not a terminal.
_PROGRESS_MIN_S = 30.0


async def _transcribe(settings: Settings, args: argparse.Namespace) -> int:
    from hypotez.voice import audio, subtitles
    from hypotez.voice.stt import Progress, Transcriber

    path: Path = args.file
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise InvalidInputError(f"{path} cannot be read: {exc.strerror or exc.__class__.__name__}.") from exc
    if args.model:
        settings = settings.model_copy(update={"whisper_model": args.model})
    duration = await asyncio.to_thread(audio.probe_duration, data)
    show_progress = sys.stderr.isatty() or duration >= _PROGRESS_MIN_S

    def progress(step: Progress) -> None:
        eta = "" if step.eta_s is None else f", about {step.eta_s:.0f} s left"
        print(
            f"\rtranscribing: {step.share:4.0%} ({step.done_s:.0f}/{step.total_s:.0f} s{eta})", end="", file=sys.stderr
        )

    transcriber = Transcriber.from_settings(settings)
    try:
        result = await transcriber.transcribe(
            data, language=args.language, on_progress=progress if show_progress else None
        )
    finally:
        if show_progress:
            print(file=sys.stderr)
        transcriber.close()
    formats = {"text": subtitles.to_text, "srt": subtitles.to_srt, "vtt": subtitles.to_vtt}
    print(formats[args.format](result.segments).rstrip("\n"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        # transcribe prints the transcript on stdout and at most one line of its own on stderr: only warnings.
        quiet = args.command == "transcribe" and settings.log_level.upper() in {"DEBUG", "INFO"}
        configure_logging("WARNING" if quiet else settings.log_level, _secrets(settings))
        if args.command == "run":
            return _run(settings, args)
        if args.command == "doctor":
            return asyncio.run(_doctor(settings, args.skip))
        if args.command == "transcribe":
            return asyncio.run(_transcribe(settings, args))
        return asyncio.run(_db(settings, args.db_command))
    except HypotezError as exc:
        print(f"hypotez: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
