"""The GAN architectures of Part II, by name: the one place that knows which exist.

Everything else asks the registry: the `--arch` choices and help, the architecture-specific options
(declared here, in the entry of each architecture that reads them, as Part I's models do) and their
validation, training (which G and D to build), the sweep's columns, and `load_checkpoint` (the
generator a checkpoint's config names; a checkpoint from before `--arch` existed is an MLP's).

Adding an architecture is one file (a `ConditionedGenerator` and a `ConditionedDiscriminator`
subclass, see conditioning.py, or any modules that offer the same) plus one
`register_architecture(...)` entry at the end of this file; one registered from anywhere else
(a test, a notebook), with options of its own, works the same way.
"""

from __future__ import annotations

from dataclasses import Field, dataclass
from typing import Any, Callable, Protocol

import torch
from torch import nn

from ..config import COUNT, POSITIVE_INT, named_option
from ..registry import Registry
from . import conv, mlp

DEFAULT_ARCH = "mlp"     # the seed's networks: `--arch`'s default, and what a checkpoint from before `--arch` holds


class GeneratorLike(Protocol):
    """What every generator offers (an `nn.Module`): sampling, training and `lstmgan gan` rely on this alone.

    `num_classes` digit labels a user passes (a cGAN; 0: none), or `num_clusters` pseudo-classes
    the generator draws from z itself, with the prior `cluster_sizes` (a buffer; 0: none).
    """

    latent_dim: int
    num_classes: int
    num_clusters: int
    cluster_sizes: torch.Tensor

    @property
    def conditional(self) -> bool:
        """Whether a user passes digit labels."""

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z [N, latent_dim] -> images [N, 1, 28, 28] in [-1, 1]. `labels`: digits [N] (a cGAN); with
        clusters None (the cluster z picks) or cluster weights [N, K] (blended, for interpolation)."""

    def set_cluster_prior(self, cluster_sizes: torch.Tensor) -> None:
        """Draw cluster c with probability cluster_sizes[c] / total."""

    def cluster_of(self, z: torch.Tensor) -> torch.Tensor:
        """The cluster [N] each z asks for: c = F⁻¹(Φ(z₀)), distributed as the prior when z ~ N(0, I)."""


@dataclass(frozen=True)
class Architecture:
    """What Part II needs to know about one architecture.

    `generator(config)` and `discriminator(config)` return freshly initialised networks (from
    torch's global RNG) for a GANConfig: G from latent_dim, num_classes, g_conditional_bn and
    clusters; D from num_conditions, d_dropout and d_projection; and from `options`, the options
    of its own, declared with `named_option` (every other architecture keeps their defaults).
    """

    name: str
    title: str
    generator: Callable[[Any], nn.Module]
    discriminator: Callable[[Any], nn.Module]
    options: tuple[Field, ...] = ()


REGISTRY: Registry[Architecture] = Registry("--arch")


def register_architecture(spec: Architecture) -> Architecture:
    """Add (or replace) an architecture under `spec.name`."""
    return REGISTRY.register(spec)


def architecture_names() -> tuple[str, ...]:
    return REGISTRY.names()


def architecture(name: str) -> Architecture:
    return REGISTRY.entry(name)


def build_generator(config) -> nn.Module:
    """The generator a GANConfig describes, freshly initialised (its cluster prior still uniform)."""
    return architecture(config.arch).generator(config)


def build_discriminator(config) -> nn.Module:
    return architecture(config.arch).discriminator(config)


# ---------------------------------------------------------------- the architectures

def _generator(module):
    return lambda c: module.Generator(c.latent_dim, c.num_classes, c.g_conditional_bn, c.clusters)


def _discriminator(module):
    return lambda c: module.Discriminator(c.num_conditions, c.d_dropout, c.d_projection)


G_WIDTH = named_option("g_width", 64, "G's feature maps at 14×14, twice as many at 7×7 (64: DCGAN's)", POSITIVE_INT,
                       metavar="MAPS", title="G maps")
G_MAPS_28 = named_option("g_maps_28", 0, "G's feature maps at 28×28, drawn into pixels by a 3×3 convolution (0: none, "
                                         "a transposed convolution draws the pixels, DCGAN's)", COUNT, metavar="MAPS",
                         title="G maps 28×28")

D_WIDTH = named_option("d_width", 64, "D's feature maps at 14×14, twice as many at 7×7 (64: DCGAN's)", POSITIVE_INT,
                       metavar="MAPS", title="D maps")

register_architecture(Architecture(DEFAULT_ARCH, "the seed's MLP", _generator(mlp), _discriminator(mlp)))
register_architecture(Architecture(
    "conv", "DCGAN-style convolutions",
    lambda c: conv.Generator(c.latent_dim, c.num_classes, c.g_conditional_bn, c.clusters, width=c.g_width,
                             maps_28=c.g_maps_28),
    lambda c: conv.Discriminator(c.num_conditions, c.d_dropout, c.d_projection, width=c.d_width),
    options=(G_WIDTH, G_MAPS_28, D_WIDTH)))
