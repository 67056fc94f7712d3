"""``hypotez doctor``: checks that this installation can run, one line per check."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hypotez.errors import HypotezError
from hypotez.ml.chat import OpenAICompatibleBackend
from hypotez.storage import Database
from hypotez.voice.stt import Transcriber

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from hypotez.config import Settings

__all__ = ["CheckResult", "run_checks"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


async def _config(settings: Settings) -> CheckResult:
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        return CheckResult("config", False, "HYPOTEZ_DISCORD_TOKEN is not set")
    return CheckResult("config", True, "Discord token set (hidden)")


async def _data_dir(settings: Settings) -> CheckResult:
    def probe() -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.data_dir, prefix=".doctor-"):
            pass

    try:
        await asyncio.to_thread(probe)
    except OSError as exc:
        return CheckResult("data directory", False, f"{settings.data_dir} is not writable ({exc.strerror})")
    return CheckResult("data directory", True, f"{settings.data_dir.resolve()} is writable")


async def _database(settings: Settings) -> CheckResult:
    try:
        db = Database(settings.resolved_database_url)
    except HypotezError as exc:
        return CheckResult("database", False, str(exc))
    try:
        state = await db.migration_state()
    except HypotezError as exc:
        return CheckResult("database", False, str(exc))
    finally:
        await db.close()
    if state.up_to_date:
        return CheckResult("database", True, f"{db.url_display} at migration {state.current}")
    if state.current is None:
        return CheckResult(
            "database",
            True,
            f"{db.url_display} reachable, not migrated yet (applied at start-up or by `hypotez db upgrade`)",
        )
    return CheckResult(
        "database",
        True,
        f"{db.url_display} at {state.current}; {state.head} is applied at start-up or by `hypotez db upgrade`",
    )


async def _whisper(settings: Settings) -> CheckResult:
    if not settings.voice_enabled:
        return CheckResult("whisper model", True, "voice is off (HYPOTEZ_VOICE_ENABLED=false): not needed")
    transcriber = Transcriber.from_settings(settings)
    try:
        await transcriber.load()
    except HypotezError as exc:
        return CheckResult("whisper model", False, str(exc))
    finally:
        transcriber.close()
    return CheckResult("whisper model", True, f"{settings.whisper_model} loads ({settings.whisper_compute_type})")


async def _tools(settings: Settings) -> CheckResult:
    """espeak-ng, the local voice when edge-tts fails.  Nothing else: audio is decoded, and Opus encoded for voice
    channels, by PyAV's own libraries (no ffmpeg program)."""
    if not settings.voice_enabled:
        return CheckResult("audio tools", True, "voice is off (HYPOTEZ_VOICE_ENABLED=false): none needed")
    if shutil.which("espeak-ng") is None:
        return CheckResult(
            "audio tools",
            False,
            "espeak-ng (the local voice when edge-tts fails) is not on PATH; install it with your package manager, "
            "or set HYPOTEZ_VOICE_ENABLED=false for a text-only bot",
        )
    return CheckResult("audio tools", True, "espeak-ng found")


async def _chat(settings: Settings) -> CheckResult:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    backend = OpenAICompatibleBackend(base_url=settings.openai_base_url, api_key=key, timeout=10.0, max_retries=0)
    where = settings.openai_base_url or "OpenAI"
    try:
        models = await backend.list_models()
    except HypotezError as exc:
        return CheckResult("chat backend", False, f"{where}: {exc}")
    finally:
        await backend.close()
    note = "" if settings.chat_model in models else f"; the default model {settings.chat_model} is not among them"
    return CheckResult("chat backend", True, f"{where} answers with {len(models)} models{note}")


CHECKS: tuple[Callable[[Settings], Awaitable[CheckResult]], ...] = (
    _config,
    _data_dir,
    _database,
    _whisper,
    _tools,
    _chat,
)


async def run_checks(settings: Settings, *, skip: frozenset[str] = frozenset()) -> list[CheckResult]:
    """Run every check whose name is not in ``skip``; each catches its own failures."""
    results: list[CheckResult] = []
    for check in CHECKS:
        name = check.__name__.lstrip("_")
        if name in skip:
            continue
        results.append(await check(settings))
    return results
