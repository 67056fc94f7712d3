"""The ``hypotez`` command: run the bot, check the installation, manage the database."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hypotez
from hypotez.config import Settings, load_settings
from hypotez.errors import HypotezError, InvalidInputError
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
        help="skip a check (config, data_dir, database, whisper, tools, chat); repeatable",
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
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(assemble(bot, settings))
    if isinstance(bot, hikari.RESTBot):
        bot.run(host=args.host or settings.http_host, port=args.port or settings.http_port)
    else:
        bot.run()
    return 0


async def _doctor(settings: Settings, skip: Sequence[str]) -> int:
    from hypotez.doctor import run_checks

    results = await run_checks(settings, skip=frozenset(skip))
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
            return asyncio.run(_doctor(settings, [s.replace("-", "_") for s in args.skip]))
        if args.command == "transcribe":
            return asyncio.run(_transcribe(settings, args))
        return asyncio.run(_db(settings, args.db_command))
    except HypotezError as exc:
        print(f"hypotez: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
