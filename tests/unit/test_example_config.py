from __future__ import annotations

from hypotez.config import Settings, load_settings
from tests.paths import REPO

EXAMPLE = REPO / "hypotez.example.toml"


def test_example_config_loads_and_matches_the_defaults() -> None:
    example = load_settings(EXAMPLE)
    defaults = Settings()
    for name in Settings.model_fields:
        assert getattr(example, name) == getattr(defaults, name), name


def test_example_config_documents_every_setting() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert name in text, f"{name} is missing from hypotez.example.toml"
