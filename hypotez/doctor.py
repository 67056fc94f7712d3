"""``hypotez doctor``: checks that this installation can run, one line per check."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hypotez.errors import HypotezError, InvalidInputError
from hypotez.ml.chat import OpenAICompatibleBackend
from hypotez.storage import Database
from hypotez.voice.stt import Transcriber

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

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


#: Where the chat check asks when no HYPOTEZ_OPENAI_BASE_URL is set (the SDK's default).
OPENAI_URL = "https://api.openai.com/v1"
#: The most offered models named when the default one is not among them.
_SHOWN_MODELS = 10


async def _chat(settings: Settings) -> CheckResult:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    backend = OpenAICompatibleBackend(base_url=settings.openai_base_url, api_key=key, timeout=10.0, max_retries=0)
    # The URL asked and whether a key went with it (never the key): the two things to check when this fails.
    where = f"{settings.openai_base_url or OPENAI_URL} ({'API key set' if key else 'no API key'})"
    try:
        models = await backend.list_models()
    except HypotezError as exc:
        return CheckResult("chat backend", False, f"{where}: {exc}")
    finally:
        await backend.close()
    default = settings.chat_model
    if not models:
        return CheckResult(
            "chat backend",
            True,
            f"{where} answers but lists no models (servers such as transformers serve load one when first asked); "
            f"the default model {default} is not checked",
        )
    if default not in models:
        offered = ", ".join(models[:_SHOWN_MODELS]) + (
            f" and {len(models) - _SHOWN_MODELS} more" if len(models) > _SHOWN_MODELS else ""
        )
        return CheckResult(
            "chat backend",
            False,
            f"{where} does not offer the default model {default} (HYPOTEZ_CHAT_MODEL); it offers {offered}",
        )
    return CheckResult(
        "chat backend", True, f"{where} answers with {len(models)} models, the default {default} among them"
    )


#: Every check, by the name it prints (``--skip`` takes these names).
CHECKS: dict[str, Callable[[Settings], Awaitable[CheckResult]]] = {
    "config": _config,
    "data directory": _data_dir,
    "database": _database,
    "whisper model": _whisper,
    "audio tools": _tools,
    "chat backend": _chat,
}
#: Earlier, shorter names ``--skip`` still takes.
_ALIASES = {"data dir": "data directory", "whisper": "whisper model", "tools": "audio tools", "chat": "chat backend"}


def check_names(names: Iterable[str]) -> frozenset[str]:
    """The checks named (as they print, any case, ``-`` or ``_`` for a space, or an older short name); raises
    :class:`InvalidInputError` listing the valid names for any other."""
    found: set[str] = set()
    for given in names:
        name = " ".join(given.replace("-", " ").replace("_", " ").casefold().split())
        name = _ALIASES.get(name, name)
        if name not in CHECKS:
            valid = ", ".join(n.replace(" ", "-") for n in CHECKS)
            raise InvalidInputError(f"doctor has no check called {given!r}; the checks are: {valid}.")
        found.add(name)
    return frozenset(found)


async def run_checks(settings: Settings, *, skip: Iterable[str] = frozenset()) -> list[CheckResult]:
    """Run every check not named in ``skip`` (see :func:`check_names`); each catches its own failures."""
    skipped = check_names(skip)
    results: list[CheckResult] = []
    for name, check in CHECKS.items():
        if name in skipped:
            continue
        results.append(await check(settings))
    return results
