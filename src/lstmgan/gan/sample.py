"""Using a trained generator: sample grids and latent interpolation (quality evaluation: evaluate.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import UsageError
from ..loading import load_checkpoint
from ..plots import image_grid, to_uint8
from ..seeding import Stream, random_stream
from .architectures import GeneratorLike
from .evaluate import evaluate_checkpoint  # noqa: F401 — re-exported: its home before evaluate.py
from .mnist import NUM_CLASSES
from .models import KIND, balanced_labels, generate

OUTPUT_SUFFIXES = (".png", ".npy")


def check_output(path, suffixes=OUTPUT_SUFFIXES) -> Path:
    """Validate an output file path before any work is done."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"--out {path}: the file must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise UsageError(f"--out {path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"--out {path}: folder {path.parent} does not exist")
    return path


def check_digit(G: GeneratorLike, digit: int | None) -> None:
    if digit is None:
        return
    if not G.conditional:
        raise UsageError("--digit needs a conditional generator (trained with --conditional); this one is not")
    if not 0 <= digit < G.num_classes:
        raise UsageError(f"--digit must be in 0..{G.num_classes - 1} (got {digit})")


def write_images(images: np.ndarray, path: Path, ncol: int) -> None:
    """uint8 [N, 28, 28] to a grid PNG or a .npy array."""
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    if path.suffix.lower() == ".npy":
        np.save(tmp, images)
    else:
        image_grid(images, ncol).save(tmp)
    tmp.replace(path)


def sample(checkpoint, n: int | None = None, digit: int | None = None, seed: int = 0,
           device: str = "auto") -> tuple[np.ndarray, int]:
    """(uint8 images [n, 28, 28], grid columns). Conditional without a digit: one row per digit."""
    G = load_checkpoint(checkpoint, resolve_device(device), kind=KIND).model
    check_digit(G, digit)
    per_row_digits = G.conditional and digit is None
    n = n if n is not None else (100 if per_row_digits else 25)
    if n < 1:
        raise UsageError(f"--n must be a positive integer (got {n})")
    if per_row_digits and n % NUM_CLASSES:
        raise UsageError(f"--n {n}: a conditional generator without --digit draws one row per digit, "
                         f"so --n must be a multiple of {NUM_CLASSES}")
    z = torch.randn(n, G.latent_dim, generator=random_stream(seed, Stream.SAMPLING))
    labels = None
    if G.conditional:
        labels = torch.full((n,), digit) if digit is not None else balanced_labels(n, grouped=True)
    ncol = n // NUM_CLASSES if per_row_digits else math.ceil(math.sqrt(n))
    return to_uint8(generate(G, z, labels)), ncol


def slerp(z1: torch.Tensor, z2: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: keeps intermediate latents at the norm typical of a Gaussian."""
    cos = torch.dot(z1 / z1.norm(), z2 / z2.norm()).clamp(-1, 1)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:
        return lerp(z1, z2, t)
    t = t[:, None]
    return (torch.sin((1 - t) * omega) * z1 + torch.sin(t * omega) * z2) / torch.sin(omega)


def lerp(z1: torch.Tensor, z2: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t[:, None]
    return (1 - t) * z1 + t * z2


def interpolate(checkpoint, steps: int = 9, mode: str = "lerp", digit: int | None = None, seed: int = 0,
                device: str = "auto") -> tuple[np.ndarray, int, dict]:
    """Images along the path from z1 to z2 (the second vector's share going 0 -> 1).

    Returns (uint8 [rows * steps, 28, 28], steps, {"z1", "z2"}); a conditional generator
    without --digit gives one row per digit.
    """
    if steps < 2:
        raise UsageError(f"--steps must be at least 2 (got {steps})")
    if mode not in ("lerp", "slerp"):
        raise UsageError(f"--mode must be lerp or slerp (got {mode!r})")
    G = load_checkpoint(checkpoint, resolve_device(device), kind=KIND).model
    check_digit(G, digit)
    z1, z2 = torch.randn(2, G.latent_dim, generator=random_stream(seed, Stream.INTERPOLATION))
    t = torch.linspace(0, 1, steps)
    path = (slerp if mode == "slerp" else lerp)(z1, z2, t)
    labels = None
    if G.conditional:
        digits = [digit] if digit is not None else list(range(G.num_classes))
        labels = torch.tensor(digits).repeat_interleave(steps)
        path = path.repeat(len(digits), 1)
    elif G.num_clusters:
        labels = blended_clusters(G, z1, z2, t)
    return to_uint8(generate(G, path, labels)), steps, {"z1": z1, "z2": z2}


def blended_clusters(G: GeneratorLike, z1: torch.Tensor, z2: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Cluster weights [steps, K] going from z1's cluster to z2's with t. Along the path z₀ alone
    would pick every cluster in between, one jump after another; blending the two ends'
    conditioning keeps the morph smooth, and the ends are exactly G(z1) and G(z2)."""
    ends = torch.nn.functional.one_hot(G.cluster_of(torch.stack([z1, z2]).to(G.cluster_sizes.device)).cpu(),
                                       G.num_clusters).float()
    return (1 - t[:, None]) * ends[0] + t[:, None] * ends[1]
