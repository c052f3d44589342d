"""Generators shipped in the package, named `pretrained:NAME` wherever a checkpoint is taken."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..errors import UsageError


def _weights() -> Path:
    return Path(str(resources.files("lstmgan.gan") / "weights"))


def available() -> dict[str, dict]:
    index = _weights() / "pretrained.json"
    return json.loads(index.read_text()) if index.is_file() else {}


def pretrained_path(name: str) -> Path:
    entries = available()
    if name not in entries:
        names = ", ".join(sorted(entries)) or "none are installed"
        raise UsageError(f"no pretrained generator {name!r} (available: {names})")
    return _weights() / entries[name]["file"]
