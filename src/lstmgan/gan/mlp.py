"""The seed's MLP GAN (`--arch mlp`, the default).

Generator   z -> 128 -> 256 -> 512 -> 512 -> 1024 -> 784, each hidden layer
            Linear + BatchNorm1d + LeakyReLU(0.2) (GELU after the second 512), Tanh out.
Discriminator 784 -> 512 -> 256 -> 1 with LeakyReLU(0.2); `forward` returns the logit
            and `probability` the sigmoid of it. Training uses binary cross-entropy in its
            logits form (`binary_cross_entropy_with_logits`): the same loss as sigmoid +
            BCELoss, without the log(0) overflow when the discriminator is confident.
Conditional (digit or cluster, see conditioning.py): the label embedding is concatenated to
            z and to the flattened image, unless conditional batch norm (G) or the
            projection term (D) replaces it.
"""

from __future__ import annotations

import torch
from torch import nn

from .conditioning import IMAGE_SIZE, ConditionedDiscriminator, ConditionedGenerator

GENERATOR_WIDTHS = (128, 256, 512, 512, 1024)
DISCRIMINATOR_WIDTHS = (512, 256)


class Generator(ConditionedGenerator):
    """z [N, latent_dim] (+ labels [N] when conditional) -> images [N, 1, 28, 28] in [-1, 1]."""

    def __init__(self, latent_dim: int = 100, num_classes: int = 0, conditional_bn: bool = False,
                 num_clusters: int = 0):
        super().__init__(latent_dim, num_classes, conditional_bn, num_clusters)
        layers, width = [], self.input_width
        for k, out in enumerate(GENERATOR_WIDTHS):
            norm = self.batch_norm(out)            # made before the Linear: the init draws in the seed's order
            activation = nn.GELU() if k == 3 else nn.LeakyReLU(0.2)   # GELU after the second 512
            layers += [nn.Linear(width, out), norm, activation]
            width = out
        layers += [nn.Linear(width, IMAGE_SIZE), nn.Tanh()]
        self.net = nn.Sequential(*layers)


class Discriminator(ConditionedDiscriminator):
    """images [N, 1, 28, 28] (+ labels) -> logit [N, 1] that the image is real.

    `dropout` > 0 adds Dropout after each hidden activation (off in the seed's network);
    `projection` conditions by the projection term instead of concatenating the label."""

    def __init__(self, num_classes: int = 0, dropout: float = 0.0, projection: bool = False):
        super().__init__(num_classes, projection)
        layers, width = [], IMAGE_SIZE + (num_classes if self.label_embedding is not None else 0)
        for out in DISCRIMINATOR_WIDTHS:
            layers += [nn.Linear(width, out), nn.LeakyReLU(0.2)] + ([nn.Dropout(dropout)] if dropout else [])
            width = out
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.add_projection(width)

    def inputs(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The flattened image, and the label embedding after it unless D projects."""
        x = images.reshape(len(images), -1)
        return x if self.label_embedding is None else torch.cat([x, self.label_embedding(labels)], dim=1)
