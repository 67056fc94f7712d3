from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hypotez.config import Capability, load_settings
from hypotez.errors import ConfigError
from hypotez.logs import RedactingFilter

TOKEN = "MTIzNDU2Nzg5.secret-discord-token"
KEY = "sk-proj-very-secret-key"


def test_defaults_use_sqlite_in_the_data_directory(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.data_dir == Path("data")
    assert settings.storage_backend == "sqlite"
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hypotez.db'}"
    assert settings.discord_token is None


def test_environment_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPOTEZ_DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("HYPOTEZ_WHISPER_MODEL", "/models/whisper-small")
    monkeypatch.setenv("HYPOTEZ_OPENAI_BASE_URL", "http://localhost:11434/v1")
    monkeypatch.setenv("HYPOTEZ_COMMAND_GUILDS", "1, 2")
    settings = load_settings()
    assert settings.discord_token is not None
    assert settings.discord_token.get_secret_value() == TOKEN
    assert settings.whisper_model == "/models/whisper-small"
    assert settings.openai_base_url == "http://localhost:11434/v1"
    assert settings.command_guilds == [1, 2]


def test_toml_file_dotenv_and_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hypotez.toml").write_text(
        'chat_model = "from-toml"\ntts_voice = "ru-RU-SvetlanaNeural"\n'
        "[permissions.123.roles]\ntrain = [77, 78]\ncurate = [5]\n",
        encoding="utf-8",
    )
    (tmp_path / ".env").write_text("HYPOTEZ_CHAT_MODEL=from-dotenv\n", encoding="utf-8")
    settings = load_settings()
    assert settings.chat_model == "from-dotenv"  # .env beats TOML
    assert settings.tts_voice == "ru-RU-SvetlanaNeural"
    assert settings.guild_roles(123) == {Capability.TRAIN: [77, 78], Capability.CURATE: [5]}
    assert settings.guild_roles(999) == {}
    monkeypatch.setenv("HYPOTEZ_CHAT_MODEL", "from-env")
    assert load_settings().chat_model == "from-env"  # environment beats .env
    assert load_settings(chat_model="explicit").chat_model == "explicit"


def test_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_unknown_capability_in_toml_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[permissions.1.roles]\nfly = [1]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"permissions\.1\.roles\.fly"):
        load_settings(path)


def test_secrets_never_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPOTEZ_DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("HYPOTEZ_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("HYPOTEZ_DATABASE_URL", "postgresql+asyncpg://bot:pg-password-123@db/hypotez")
    settings = load_settings()
    for text in (repr(settings), str(settings), settings.database_url_display, str(settings.model_dump())):
        assert TOKEN not in text
        assert KEY not in text
        assert "pg-password-123" not in text
    assert settings.database_url_display == "postgresql+asyncpg://bot:***@db/hypotez"


def test_redacting_filter_masks_secrets_in_messages_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("hypotez.test.redaction")
    flt = RedactingFilter([TOKEN, KEY])
    caplog.handler.addFilter(flt)
    try:
        logger.warning("connecting with %s and %s", TOKEN, KEY)
        try:
            raise RuntimeError(f"bad token {TOKEN}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        caplog.handler.removeFilter(flt)
    assert TOKEN not in caplog.text
    assert KEY not in caplog.text
    assert "**********" in caplog.text
    assert "connecting with" in caplog.text
