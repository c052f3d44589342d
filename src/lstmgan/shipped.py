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


def record_shipped(name: str, entry: dict | None = None, metrics: dict | None = None,
                   folder: Path | None = None) -> None:
    """Add a shipped model's line to pretrained.json (one model per line, as the file is kept) and/or its
    measured metrics to metrics.json (under `pretrained:NAME`), in `folder` (default: the package's own)."""
    folder = folder or weights_dir()
    if entry is not None:
        index = json.loads((folder / "pretrained.json").read_text()) | {name: entry}
        lines = [f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in index.items()]
        (folder / "pretrained.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")
    if metrics is not None:
        measured = json.loads((folder / "metrics.json").read_text()) | {PRETRAINED_PREFIX + name: metrics}
        (folder / "metrics.json").write_text(json.dumps(measured, indent=2, ensure_ascii=False) + "\n")


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
