"""Open any checkpoint or shipped model of either part.

`load_checkpoint(path)` reads the file (checkpoint.py), then builds the model its kind names
(the palindrome classifier or the GAN generator) with the builder that part registered here
(`register_kind`, in each part's `models` module; `import lstmgan` imports both). `pretrained:NAME`
is looked up in the index of shipped weights (shipped.py). This module knows neither part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoint import read_checkpoint, save_weights
from .errors import UsageError
from .shipped import resolve_path


@dataclass(frozen=True)
class Kind:
    """What a part registers for its checkpoints: how to build the model, and the dtype its weights travel in."""

    model_from_checkpoint: Callable[[dict, Any], torch.nn.Module]
    export_dtype: torch.dtype


KINDS: dict[str, Kind] = {}


def register_kind(kind: str, model_from_checkpoint: Callable[[dict, Any], torch.nn.Module],
                  export_dtype: torch.dtype) -> None:
    KINDS[kind] = Kind(model_from_checkpoint, export_dtype)


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
    model = KINDS[data["kind"]].model_from_checkpoint(data, resolved)
    return LoadedCheckpoint(data["kind"], data["config"], model.to(device).eval(), resolved, data)


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
    KINDS[kind].model_from_checkpoint({**data, "model": weights}, checkpoint)   # refuse weights that do not load
    state = {k: v.to(KINDS[kind].export_dtype) if v.is_floating_point() else v for k, v in weights.items()}
    extra = {"progress": data.get("progress", {}), **({"metrics": metrics} if metrics else {})}
    save_weights(out, kind, data["config"], state, **extra)
    return out
