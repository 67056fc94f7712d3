"""Local models: the ones trained here (``local:job-N``) and base models an operator placed under
``<data dir>/models/<name>`` (``local:<name>``).  Only these names are accepted from members, never paths."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from hypotez.errors import NotFoundError
from hypotez.ml.trainers.local import MODEL_PREFIX, local_models, model_path

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["LocalModels"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class LocalModels:
    """Where local models live under the data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.training_dir = data_dir / "training"
        self.models_dir = data_dir / "models"

    def _base_dirs(self) -> list[Path]:
        try:
            return sorted(p for p in self.models_dir.iterdir() if p.is_dir() and _NAME.fullmatch(p.name))
        except OSError:
            return []

    def resolve(self, model: str) -> Path:
        """The directory of ``local:<name>``: a trained model first, else a base model under ``models/``."""
        name = model.removeprefix(MODEL_PREFIX)
        if not model.startswith(MODEL_PREFIX) or not _NAME.fullmatch(name) or ".." in name:
            raise NotFoundError("model", model, f"`{model}` is not the name of a local model.")
        try:
            return model_path(self.training_dir, model)
        except NotFoundError:
            base = self.models_dir / name
            if base.is_dir():
                return base
            raise

    def ids(self) -> list[str]:
        """Every local model on this machine: trained ones (of every server), then base ones."""
        trained = local_models(self.training_dir)
        return [*trained, *(i for i in self.base_ids() if i not in trained)]

    def base_ids(self) -> list[str]:
        """The base models an operator placed under ``models/`` (offered to every server)."""
        return [MODEL_PREFIX + p.name for p in self._base_dirs()]

    def base_model_for_training(self, base_model: str) -> str:
        """What the local trainer loads: a ``local:`` name becomes its directory; a hub name stays as it is."""
        return str(self.resolve(base_model)) if base_model.startswith(MODEL_PREFIX) else base_model
