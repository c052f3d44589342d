"""The index of shipped weights: `pretrained:NAME` -> a file in the package's `weights/` folder.

A low module (it knows neither part), so that a part can find its own shipped files (the GAN's
feature classifier, say) without importing the loader that knows both parts.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from .errors import UsageError

PRETRAINED_PREFIX = "pretrained:"


def weights_dir() -> Path:
    """The package's folder of shipped weights (generators, palindrome models, feature classifiers)."""
    return Path(str(resources.files("lstmgan") / "weights"))


def pretrained_index() -> dict[str, dict]:
    """The shipped models by name: {name: {"file", "kind", "description"}}."""
    index = weights_dir() / "pretrained.json"
    return json.loads(index.read_text()) if index.is_file() else {}


def pretrained_names(kind: str | None = None) -> list[str]:
    return [name for name, entry in pretrained_index().items() if kind is None or entry["kind"] == kind]


def resolve_path(path) -> Path:
    """A checkpoint path, or the file behind `pretrained:NAME`."""
    text = str(path)
    if not text.startswith(PRETRAINED_PREFIX):
        return Path(path)
    name, entries = text[len(PRETRAINED_PREFIX):], pretrained_index()
    if name not in entries:
        raise UsageError(f"no pretrained model {name!r} (available: {', '.join(entries) or 'none are installed'})")
    return weights_dir() / entries[name]["file"]
