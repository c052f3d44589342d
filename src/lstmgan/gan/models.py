"""The seed's MLP GAN, optionally conditioned on the digit label (cGAN).

Generator   z -> 128 -> 256 -> 512 -> 512 -> 1024 -> 784, each hidden layer
            Linear + BatchNorm1d + LeakyReLU(0.2) (GELU after the second 512), Tanh out.
Discriminator 784 -> 512 -> 256 -> 1 with LeakyReLU(0.2); `forward` returns the logit
            and `probability` the sigmoid of it. Training uses binary cross-entropy in its
            logits form (`binary_cross_entropy_with_logits`): the same loss as sigmoid +
            BCELoss, without the log(0) overflow when the discriminator is confident.
Conditional: a label embedding (num_classes -> num_classes) is concatenated to z and to
            the flattened image.
"""

from __future__ import annotations

import math

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
IMAGE_SIZE = math.prod(IMAGE_SHAPE)
GENERATOR_WIDTHS = (128, 256, 512, 512, 1024)
DISCRIMINATOR_WIDTHS = (512, 256)


class Generator(nn.Module):
    """z [N, latent_dim] (+ labels [N] when conditional) -> images [N, 1, 28, 28] in [-1, 1]."""

    def __init__(self, latent_dim: int = 100, num_classes: int = 0):
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.label_embedding = nn.Embedding(num_classes, num_classes) if num_classes else None
        layers, width = [], latent_dim + num_classes
        for k, out in enumerate(GENERATOR_WIDTHS):
            activation = nn.GELU() if k == 3 else nn.LeakyReLU(0.2)   # GELU after the second 512
            layers += [nn.Linear(width, out), nn.BatchNorm1d(out), activation]
            width = out
        layers += [nn.Linear(width, IMAGE_SIZE), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            if labels is None:
                raise ValueError("a conditional generator needs labels")
            z = torch.cat([z, self.label_embedding(labels)], dim=1)
        return self.net(z).view(-1, *IMAGE_SHAPE)


class Discriminator(nn.Module):
    """images [N, 1, 28, 28] (+ labels) -> logit [N, 1] that the image is real.

    `dropout` > 0 adds Dropout after each hidden activation (off in the seed's network)."""

    def __init__(self, num_classes: int = 0, dropout: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        self.label_embedding = nn.Embedding(num_classes, num_classes) if num_classes else None
        layers, width = [], IMAGE_SIZE + num_classes
        for out in DISCRIMINATOR_WIDTHS:
            layers += [nn.Linear(width, out), nn.LeakyReLU(0.2)] + ([nn.Dropout(dropout)] if dropout else [])
            width = out
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = images.reshape(len(images), -1)
        if self.num_classes:
            x = torch.cat([x, self.label_embedding(labels)], dim=1)
        return self.net(x)

    def probability(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D(x): the sigmoid probability that `images` are real."""
        return torch.sigmoid(self(images, labels))


def generator_from_config(config: dict) -> Generator:
    return Generator(config["latent_dim"], 10 if config.get("conditional") else 0)


def model_from_checkpoint(data: dict, path) -> Generator:
    """The generator stored in a validated GAN checkpoint dict (fp16 shipped weights load too)."""
    from ..checkpoint import load_state
    from ..errors import UsageError

    config = data["config"]
    if not isinstance(config.get("latent_dim"), int) or config["latent_dim"] < 1:
        raise UsageError(f"{path}: checkpoint config has no valid latent_dim")
    generator = generator_from_config(config)
    load_state(generator, data["model"], path, "generator")
    return generator
