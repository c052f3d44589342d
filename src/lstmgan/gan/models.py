"""Generators from a config or a checkpoint (what `lstmgan.load_checkpoint` builds), and sampling from one.

The networks themselves are in mlp.py and conv.py, the pieces they share in conditioning.py,
and the list of architectures in architectures.py.
"""

from __future__ import annotations

import torch

from ..checkpoint import check_state, load_state
from ..errors import UsageError
from ..loading import register_kind
from .architectures import REGISTRY, GeneratorLike, build_generator
from .conditioning import IMAGE_SHAPE, IMAGE_SIZE, ConditionalBatchNorm1d, ConditionalBatchNorm2d
from .config import GANConfig, as_it_ran
from .mnist import NUM_CLASSES

KIND = GANConfig.kind

__all__ = ["KIND", "IMAGE_SHAPE", "IMAGE_SIZE", "ConditionalBatchNorm1d", "ConditionalBatchNorm2d",
           "saved_config", "generator_from_config", "model_from_checkpoint", "generate", "balanced_labels"]


def saved_config(values: dict) -> GANConfig:
    """The GANConfig of a checkpoint's config; options it predates take what the run did (no `arch`: MLP,
    no `val_split`: the file's tail), else their defaults. Unvalidated (see `checked_config`)."""
    known = GANConfig.defaults().keys()
    return GANConfig(**{k: v for k, v in as_it_ran(values).items() if k in known})


def checked_config(values: dict, path) -> GANConfig:
    """A checkpoint's config, validated by the same rules as a run's flags (its architecture's options included)."""
    try:
        return saved_config(values).validate()
    except UsageError as error:
        raise UsageError(f"{path}: checkpoint config: {error}") from None


def generator_from_config(values: dict) -> GeneratorLike:
    """A fresh generator for a checkpoint's config."""
    return build_generator(saved_config(values))


def model_from_checkpoint(data: dict, path) -> GeneratorLike:
    """The generator stored in a validated GAN checkpoint dict (fp16 shipped weights load too)."""
    config = data["config"]
    arch = checked_config(config, path).arch
    generator = generator_from_config(config)
    try:
        load_state(generator, data["model"], path, f"{arch} generator")
    except UsageError:
        other = architecture_of(data["model"], config)
        if other is None or other == arch:
            raise
        raise UsageError(f"{path}: these are the weights of a {other} generator, but the checkpoint config "
                         f"names --arch {arch}") from None
    return generator


def architecture_of(state: dict, config: dict) -> str | None:
    """The architecture whose generator (with `config`'s other options) has exactly `state`'s weights, if any."""
    for name in REGISTRY:
        try:
            check_state(generator_from_config({**config, "arch": name}), state, "")
            return name
        except UsageError:
            continue
    return None


@torch.no_grad()
def generate(G: GeneratorLike, z: torch.Tensor, labels=None, batch_size: int = 1000) -> torch.Tensor:
    """Images from G in eval mode (batch-norm running statistics), batched; G's mode is restored."""
    was_training = G.training
    G.eval()
    device = next(G.parameters()).device
    out = [G(z[s:s + batch_size].to(device), None if labels is None else labels[s:s + batch_size].to(device))
           for s in range(0, len(z), batch_size)]
    G.train(was_training)
    return torch.cat(out)


def balanced_labels(n: int, grouped: bool = False) -> torch.Tensor:
    """n digit labels in equal shares: cycling 0, 1, ..., 9, 0, ... or, `grouped`, 0, 0, ..., 1, 1, ... (grid rows)."""
    return torch.arange(n) * NUM_CLASSES // n if grouped else torch.arange(n) % NUM_CLASSES


register_kind(KIND, model_from_checkpoint, torch.float16)      # a generator travels in 3.4 MB as float16
