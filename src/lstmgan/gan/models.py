"""The seed's MLP GAN, optionally conditioned on the digit label (cGAN).

Generator   z -> 128 -> 256 -> 512 -> 512 -> 1024 -> 784, each hidden layer
            Linear + BatchNorm1d + LeakyReLU(0.2) (GELU after the second 512), Tanh out.
Discriminator 784 -> 512 -> 256 -> 1 with LeakyReLU(0.2); `forward` returns the logit
            and `probability` the sigmoid of it. Training uses binary cross-entropy in its
            logits form (`binary_cross_entropy_with_logits`): the same loss as sigmoid +
            BCELoss, without the log(0) overflow when the discriminator is confident.
Conditional: a label embedding (num_classes -> num_classes) is concatenated to z and to
            the flattened image. Two options replace the concatenation:
            * `conditional_bn` in G: each batch norm gets a per-class scale and shift
              (conditional batch norm, de Vries et al. 2017), y = γ_c x̂ + β_c;
            * `projection` in D: D(x, c) = ψ(φ(x)) + e_c · φ(x), the projection discriminator
              (Miyato & Koyama 2018), φ the last hidden layer and e_c a learned class vector.
Cluster-conditioned (unconditional to its user): G is conditioned the same way on one of K
            pseudo-classes (k-means clusters of the training images, see clusters.py) and
            picks the cluster from z itself: c = F⁻¹(Φ(z₀)), with F the clusters' cumulative
            frequencies in the data and Φ the standard normal CDF, so c ~ the data's prior
            and G(z) stays a function of z alone.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..checkpoint import load_state
from ..errors import UsageError
from .mnist import NUM_CLASSES

KIND = "gan"
IMAGE_SHAPE = (1, 28, 28)
IMAGE_SIZE = math.prod(IMAGE_SHAPE)
GENERATOR_WIDTHS = (128, 256, 512, 512, 1024)
DISCRIMINATOR_WIDTHS = (512, 256)


def embed(table: nn.Embedding, labels: torch.Tensor) -> torch.Tensor:
    """Rows of `table` for integer labels [N], or their mixture for weights [N, classes] (soft labels)."""
    return labels.to(table.weight.dtype) @ table.weight if labels.is_floating_point() else table(labels)


class ConditionalBatchNorm1d(nn.Module):
    """Batch norm whose scale and shift depend on the class: y = γ_c ⊙ (x − μ_B) / σ_B + β_c."""

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(num_features, affine=False)
        self.scale = nn.Embedding(num_classes, num_features)     # γ_c, starts at 1
        self.shift = nn.Embedding(num_classes, num_features)     # β_c, starts at 0
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return embed(self.scale, labels) * self.norm(x) + embed(self.shift, labels)


class Generator(nn.Module):
    """z [N, latent_dim] (+ labels [N] when conditional) -> images [N, 1, 28, 28] in [-1, 1]."""

    def __init__(self, latent_dim: int = 100, num_classes: int = 0, conditional_bn: bool = False,
                 num_clusters: int = 0):
        super().__init__()
        if num_classes and num_clusters:
            raise ValueError("a generator is conditioned on digit labels or on clusters, not both")
        conditions = num_classes or num_clusters
        if conditional_bn and not conditions:
            raise ValueError("conditional batch norm needs num_classes or num_clusters")
        self.latent_dim, self.num_classes, self.conditional_bn = latent_dim, num_classes, conditional_bn
        self.num_clusters = num_clusters
        if num_clusters:   # images per cluster in the data (integers: exact in any export); equal until set
            self.register_buffer("cluster_sizes", torch.ones(num_clusters, dtype=torch.long))
        concatenated = conditions if conditions and not conditional_bn else 0
        self.label_embedding = nn.Embedding(conditions, conditions) if concatenated else None
        layers, width = [], latent_dim + concatenated
        for k, out in enumerate(GENERATOR_WIDTHS):
            norm = ConditionalBatchNorm1d(out, conditions) if conditional_bn else nn.BatchNorm1d(out)
            activation = nn.GELU() if k == 3 else nn.LeakyReLU(0.2)   # GELU after the second 512
            layers += [nn.Linear(width, out), norm, activation]
            width = out
        layers += [nn.Linear(width, IMAGE_SIZE), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def set_cluster_prior(self, cluster_sizes: torch.Tensor) -> None:
        """Draw cluster c with probability cluster_sizes[c] / total (the data's frequencies)."""
        self.cluster_sizes.copy_(cluster_sizes)

    def cluster_of(self, z: torch.Tensor) -> torch.Tensor:
        """c = F⁻¹(Φ(z₀)): the cluster that noise z asks for; c ~ the prior when z ~ N(0, I)."""
        dtype = torch.float32 if z.device.type == "mps" else torch.float64              # MPS has no float64
        cdf = self.cluster_sizes.to(dtype).cumsum(0) / self.cluster_sizes.sum()        # F
        u = torch.special.ndtr(z[:, 0].to(dtype))                                      # Φ(z₀) ~ U(0, 1)
        return torch.searchsorted(cdf, u.contiguous(), right=True).clamp_max(self.num_clusters - 1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """`labels`: digits [N] (conditional G); for a cluster-conditioned G None (the clusters z picks)
        or cluster weights [N, K], which blend the clusters' conditioning (interpolation)."""
        if self.num_clusters and labels is None:
            labels = self.cluster_of(z)
        if self.conditional and labels is None:
            raise ValueError("a conditional generator needs labels")
        x = z if self.label_embedding is None else torch.cat([z, embed(self.label_embedding, labels)], dim=1)
        for layer in self.net:
            x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm1d) else layer(x)
        return x.view(-1, *IMAGE_SHAPE)


class Discriminator(nn.Module):
    """images [N, 1, 28, 28] (+ labels) -> logit [N, 1] that the image is real.

    `dropout` > 0 adds Dropout after each hidden activation (off in the seed's network);
    `projection` conditions by the projection term instead of concatenating the label."""

    def __init__(self, num_classes: int = 0, dropout: float = 0.0, projection: bool = False):
        super().__init__()
        if projection and not num_classes:
            raise ValueError("a projection discriminator needs num_classes")
        self.num_classes, self.projection = num_classes, projection
        concatenated = num_classes if num_classes and not projection else 0
        self.label_embedding = nn.Embedding(num_classes, num_classes) if concatenated else None
        layers, width = [], IMAGE_SIZE + concatenated
        for out in DISCRIMINATOR_WIDTHS:
            layers += [nn.Linear(width, out), nn.LeakyReLU(0.2)] + ([nn.Dropout(dropout)] if dropout else [])
            width = out
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        if projection:
            self.class_projection = nn.Embedding(num_classes, width)       # e_c
            bound = 1 / math.sqrt(width)                                  # like nn.Linear's init
            nn.init.uniform_(self.class_projection.weight, -bound, bound)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = images.reshape(len(images), -1)
        if self.label_embedding is not None:
            x = torch.cat([x, self.label_embedding(labels)], dim=1)
        if not self.projection:
            return self.net(x)
        features = self.net[:-1](x)                                                # φ(x)
        return self.net[-1](features) + (self.class_projection(labels) * features).sum(1, keepdim=True)

    def probability(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D(x): the sigmoid probability that `images` are real."""
        return torch.sigmoid(self(images, labels))


def generator_from_config(config: dict) -> Generator:
    return Generator(config["latent_dim"], NUM_CLASSES if config.get("conditional") else 0,
                     bool(config.get("g_conditional_bn")), int(config.get("clusters") or 0))


def model_from_checkpoint(data: dict, path) -> Generator:
    """The generator stored in a validated GAN checkpoint dict (fp16 shipped weights load too)."""
    config = data["config"]
    if not isinstance(config.get("latent_dim"), int) or config["latent_dim"] < 1:
        raise UsageError(f"{path}: checkpoint config has no valid latent_dim")
    if not isinstance(config.get("clusters", 0), int) or config.get("clusters", 0) < 0:
        raise UsageError(f"{path}: checkpoint config has an invalid clusters value")
    generator = generator_from_config(config)
    load_state(generator, data["model"], path, "generator")
    return generator


@torch.no_grad()
def generate(G: Generator, z: torch.Tensor, labels=None, batch_size: int = 1000) -> torch.Tensor:
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
