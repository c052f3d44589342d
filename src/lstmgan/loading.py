"""Open any checkpoint or shipped model of either part.

`load_checkpoint(path)` reads the file (checkpoint.py), then builds the model its kind
names (the palindrome classifier or the GAN generator). `pretrained:NAME` is looked up in
the package's `weights/pretrained.json`. This is the one module that knows both parts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from .checkpoint import read_checkpoint, save_weights
from .errors import UsageError
from .gan import models as gan_models
from .recurrent import models as recurrent_models

PRETRAINED_PREFIX = "pretrained:"
MODEL_FROM_CHECKPOINT = {recurrent_models.KIND: recurrent_models.model_from_checkpoint,
                         gan_models.KIND: gan_models.model_from_checkpoint}


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


@dataclass
class LoadedCheckpoint:
    """What `load_checkpoint` returns: the kind, the resolved config and a ready model."""

    kind: str
    config: dict
    model: torch.nn.Module
    path: Path
    data: dict


def load_checkpoint(path, device: str | torch.device = "cpu", kind: str | None = None) -> LoadedCheckpoint:
    """Open a checkpoint of either part; `.model` is the palindrome classifier or the generator.

    The model is in eval mode on `device`. `path` may be `pretrained:NAME`.
    """
    resolved = resolve_path(path)
    data = read_checkpoint(resolved, kind)
    model = MODEL_FROM_CHECKPOINT[data["kind"]](data, resolved)
    return LoadedCheckpoint(data["kind"], data["config"], model.to(device).eval(), resolved, data)


# what travels of each kind: the palindrome classifiers are small (float32); a generator is 3.4 MB in float16
EXPORT_DTYPE = {recurrent_models.KIND: torch.float32, gan_models.KIND: torch.float16}


def export_weights(checkpoint, out, kind: str, raw: bool = False, metrics: dict | None = None) -> Path:
    """Write a model's weights as .safetensors, with its config, progress and `metrics` in the metadata.

    `raw`: a GAN run's live generator instead of the EMA one it keeps (training checkpoints only).
    """
    out = Path(out)
    if out.suffix != ".safetensors":
        raise UsageError(f"--out {out}: the file must end in .safetensors")
    if out.exists():
        raise UsageError(f"--out {out} already exists; remove it or choose another name")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.parent} does not exist")
    data = read_checkpoint(resolve_path(checkpoint), kind)
    weights = data["model"]
    if raw:
        if "generator" not in data:
            raise UsageError(f"{checkpoint}: holds no separate live generator (--raw needs a GAN training checkpoint)")
        weights = data["generator"]
    MODEL_FROM_CHECKPOINT[kind]({**data, "model": weights}, checkpoint)      # refuse weights that do not load
    state = {k: v.to(EXPORT_DTYPE[kind]) if v.is_floating_point() else v for k, v in weights.items()}
    extra = {"progress": data.get("progress", {}), **({"metrics": metrics} if metrics else {})}
    save_weights(out, kind, data["config"], state, **extra)
    return out
