"""Settings, read from the environment (``HYPOTEZ_*``), a ``.env`` file and an optional TOML file.

Precedence, highest first: explicit arguments, environment variables, ``.env``, the TOML file, defaults.
The TOML file is ``$HYPOTEZ_CONFIG`` if set, else ``hypotez.toml`` in the working directory if present.
Secrets are :class:`pydantic.SecretStr`: their ``repr`` and ``str`` are masked, and nothing in hypotez
prints their value.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url

from hypotez.errors import ConfigError

__all__ = ["VISION_MODELS", "Capability", "GuildPermissions", "Settings", "load_settings"]

#: Model ids that take images, as shell-style patterns (``vision_models`` in the settings replaces them).
VISION_MODELS: tuple[str, ...] = (
    "gpt-4o*",
    "gpt-4.1*",
    "gpt-5*",
    "o3*",
    "o4*",
    "*vision*",
    "*-vl*",
    "*llava*",
    "*gemma-3*",
    "*pixtral*",
)


class Capability(enum.StrEnum):
    """What a member may do; granted per guild by role (see :class:`GuildPermissions`)."""

    CHAT = "chat"
    CORRECT = "correct"
    FEEDBACK = "feedback"
    #: Transcribe audio, make the bot speak, bring it into a voice channel.
    VOICE = "voice"
    CURATE = "curate"
    FILES = "files"
    TRAIN = "train"
    ADMIN = "admin"


#: Capabilities every member has unless a guild restricts them to roles.
OPEN_BY_DEFAULT = frozenset({Capability.CHAT, Capability.CORRECT, Capability.FEEDBACK, Capability.VOICE})


class GuildPermissions(BaseSettings):
    """Role ids granted each capability in one guild.

    A capability listed here is held by members with any of its roles (and by administrators).  A capability
    not listed keeps its default: open to everyone for chat/correct/feedback, administrators only otherwise.
    """

    model_config = SettingsConfigDict(extra="forbid")

    roles: dict[Capability, list[int]] = Field(default_factory=dict[Capability, list[int]])


class Settings(BaseSettings):
    """Every setting hypotez reads.  See the README's settings table and ``hypotez.example.toml``."""

    model_config = SettingsConfigDict(
        env_prefix="HYPOTEZ_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        toml_file=None,
    )

    # Discord
    discord_token: SecretStr | None = None
    discord_public_key: str | None = None
    discord_rest_url: str | None = None
    command_guilds: Annotated[list[int], NoDecode] = Field(default_factory=list[int])
    http_host: str = "0.0.0.0"  # noqa: S104 - HTTP interactions mode serves Discord from outside
    http_port: int = 8080

    # Storage
    data_dir: Path = Path("data")
    database_url: SecretStr | None = None
    max_upload_bytes: int = 25 * 1024 * 1024
    #: Longest training example accepted into a dataset, in estimated tokens.
    dataset_max_example_tokens: int = 32768
    #: Most examples one dataset version may hold (an import past it is refused, nothing stored).
    dataset_max_examples: int = 1_000_000

    # Chat backend (any OpenAI-compatible endpoint)
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    chat_model: str = "gpt-4o-mini"
    chat_timeout: float = 60.0
    chat_max_retries: int = 2
    chat_context_tokens: int = 6000
    chat_stream_interval: float = 1.0
    #: The line under each reply: ``usage`` (model, tokens, seconds), ``model`` (the model alone) or ``off``.
    chat_footer: Literal["off", "model", "usage"] = "usage"
    #: In a direct message with the bot, a message within this many minutes of the bot's last reply continues
    #: that conversation; a later one starts a new one.
    chat_dm_idle_minutes: float = Field(default=60.0, ge=0)
    #: Tokens a server, and each member, may spend on the model per day (UTC); 0: no budget.
    chat_daily_tokens_per_server: int = Field(default=0, ge=0)
    chat_daily_tokens_per_member: int = Field(default=0, ge=0)
    #: Model ids that take images (shell-style patterns); images sent to any other model are refused.
    vision_models: list[str] = Field(default_factory=lambda: list(VISION_MODELS))
    #: Images one message may carry to the model, and the largest one read, in bytes.
    chat_max_images: int = Field(default=4, ge=0)
    chat_image_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    #: Names members see for model ids (``{"/srv/models/qwen-ft": "qwen-ft"}``); an id that is a path with no
    #: name here is shown by its last part, never whole.
    model_aliases: dict[str, str] = Field(default_factory=dict[str, str])

    # Training
    job_poll_interval: float = 15.0
    #: A job's loss chart is re-uploaded at most this often (seconds), and only when new points arrived; the
    #: final chart always.
    job_chart_interval_s: float = Field(default=30.0, ge=0)
    #: Refresh presses on a job's status message this soon (seconds) after the last one answer from what is stored.
    job_refresh_debounce_s: float = Field(default=5.0, ge=0)
    openai_base_model: str = "gpt-4.1-mini-2025-04-14"
    local_base_model: str = "Qwen/Qwen2.5-0.5B-Instruct"
    local_max_new_tokens: int = 256
    #: Local training jobs running at once on this machine, in all (the rest wait in a queue).
    local_max_concurrent_jobs: int = Field(default=1, ge=1)
    #: Local training jobs running at once for one server.
    local_max_jobs_per_server: int = Field(default=1, ge=1)

    # Evaluation: the LLM judge of ``/test run scorer:judge`` (any OpenAI-compatible chat model)
    #: The judge model; unset, ``scorer:judge`` is refused.
    judge_model: str | None = None
    #: The judge's server; unset, the chat backend's (``openai_base_url``, with ``openai_api_key``).
    judge_base_url: str | None = None
    #: The judge server's key (the chat backend's key is never sent to a judge server of its own).
    judge_api_key: SecretStr | None = None
    #: Cases judged at the same time, and seconds one judgement may take.
    judge_concurrency: int = Field(default=4, ge=1)
    judge_timeout: float = Field(default=60.0, gt=0)

    # Voice: off turns every voice feature off (a text-only install needs no espeak-ng)
    voice_enabled: bool = True
    # Speech recognition (faster-whisper)
    whisper_model: str = "small"
    whisper_device: Literal["auto", "cpu", "cuda"] = "auto"
    whisper_compute_type: str = "int8"
    #: Clips transcribed at the same time (worker threads).
    whisper_workers: int = 1
    #: Clips that may wait for a worker; one more gets "busy, try again in about N s".
    whisper_queue: int = 8
    #: ``lazy`` loads the model on the first transcription, ``startup`` when the bot starts.
    whisper_load: Literal["lazy", "startup"] = "lazy"
    #: Recordings at least this long (seconds) go through faster-whisper's batched pipeline; 0 never.
    whisper_batched_min_s: float = 60.0
    whisper_batch_size: int = 8
    whisper_beam_size: int = 1
    #: Longest recording accepted, in seconds, and largest audio file downloaded, in bytes.
    voice_max_duration_s: float = 600.0
    voice_max_bytes: int = 25 * 1024 * 1024
    #: Terms kept per server in the recognition vocabulary (names and words members corrected).
    voice_vocabulary_size: int = 50
    # Speech synthesis (edge-tts, espeak-ng when it fails)
    tts_voice: str = "en-US-AriaNeural"
    tts_rate: str = "+0%"
    tts_pitch: str = "+0Hz"
    tts_retries: int = 2
    tts_timeout: float = 15.0
    #: Spoken clips kept in memory for repeated phrases.
    tts_cache_size: int = 64
    tts_fallback_voice: str = "en"
    tts_max_chars: int = 1000
    # Voice channels
    voice_transport: Literal["none", "hikari-wave"] = "hikari-wave"
    #: Leave a voice channel after this many seconds with nothing played (and at once when it empties).
    voice_idle_timeout: float = 300.0
    voice_queue_size: int = 20

    # Permissions: guild id -> capability -> role ids
    permissions: dict[int, GuildPermissions] = Field(default_factory=dict[int, GuildPermissions])

    log_level: str = "INFO"

    # Cooldowns (counted in the database, so they hold across replicas sharing it)
    #: ``/chat`` calls per member per minute.
    cooldown_chat_per_minute: int = Field(default=10, ge=1)
    #: Transcriptions (``/transcribe``, "Transcribe") per member per minute.
    cooldown_transcribe_per_minute: int = Field(default=5, ge=1)
    #: ``/say`` calls per member per minute.
    cooldown_say_per_minute: int = Field(default=10, ge=1)
    #: ``/train`` jobs started per server per hour.
    cooldown_train_per_hour: int = Field(default=10, ge=1)

    # Blind arena (``/arena``)
    #: A match closes (and shows its models' names to everyone) after this many votes.
    arena_close_after_votes: int = Field(default=5, ge=1)
    #: ... or this many hours after it started, whichever comes first.
    arena_open_hours: float = Field(default=24.0, gt=0)

    _toml_file: ClassVar[Path | None] = None

    @field_validator("command_guilds", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(part) for part in value.replace(",", " ").split()]
        if isinstance(value, int):
            return [value]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=cls._toml_file),
            file_secret_settings,
        )

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hypotez.db').resolve()}"

    @property
    def database_url_display(self) -> str:
        """The database URL with any password masked, safe for logs and replies."""
        return make_url(self.resolved_database_url).render_as_string(hide_password=True)

    @property
    def storage_backend(self) -> str:
        """``sqlite`` or ``postgresql`` (the dialect name of the database URL)."""
        return make_url(self.resolved_database_url).get_backend_name()

    def default_base_model(self, trainer: str) -> str:
        """The model ``/train`` starts from when none is given."""
        return self.openai_base_model if trainer == "openai" else self.local_base_model

    def guild_roles(self, guild_id: int) -> dict[Capability, list[int]]:
        """Role grants configured for a guild (empty when none)."""
        perms = self.permissions.get(guild_id)
        return dict(perms.roles) if perms else {}


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Read settings from every source; ``config_file`` overrides ``$HYPOTEZ_CONFIG``."""
    path: Path | None
    if config_file is not None:
        path = Path(config_file)
    elif os.environ.get("HYPOTEZ_CONFIG"):
        path = Path(os.environ["HYPOTEZ_CONFIG"])
    else:
        path = Path("hypotez.toml") if Path("hypotez.toml").is_file() else None
    if path is not None and not path.is_file():
        raise ConfigError(f"The config file {path} does not exist.", setting="HYPOTEZ_CONFIG")

    configured = type("Settings", (Settings,), {"_toml_file": path, "__module__": __name__})
    try:
        return configured(**overrides)
    except ValidationError as exc:
        # Name the settings and the problem, never the values (they may be secrets).
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_input=False)
        )
        raise ConfigError(f"Invalid settings: {problems}.") from None
    except SettingsError as exc:
        raise ConfigError(f"Invalid settings: {exc}.") from None
