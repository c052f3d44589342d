"""What every GAN architecture shares: the image it draws, and how G and D are conditioned.

Conditions: a digit label (a cGAN, the user passes it) or one of K pseudo-classes (k-means
clusters of the training images, see clusters.py) that G picks from z itself.

Generator   the condition enters G as a label embedding (conditions -> conditions)
            concatenated to z, or with `conditional_bn` through the batch norms: each gets
            a per-condition scale and shift (conditional batch norm, de Vries et al. 2017),
            y = γ_c x̂ + β_c. A cluster-conditioned G draws its cluster from z:
            c = F⁻¹(Φ(z₀)), with F the clusters' cumulative frequencies in the data and Φ the
            standard normal CDF, so c ~ the data's prior and G(z) stays a function of z alone.
Discriminator D(x) = ψ(φ(x)): the label embedding joins D's input, or with `projection`
            D(x, c) = ψ(φ(x)) + e_c · φ(x), the projection discriminator (Miyato & Koyama
            2018), φ(x) the last hidden features and e_c a learned class vector.

An architecture (mlp.py, conv.py) subclasses `ConditionedGenerator` and `ConditionedDiscriminator`
and builds their `net`: G's layers (batch norms from `batch_norm`, which conditions them), and
D's layers with the output layer ψ last.
"""

from __future__ import annotations

import math

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)           # what every generator draws and every discriminator reads
IMAGE_SIZE = math.prod(IMAGE_SHAPE)


def embed(table: nn.Embedding, labels: torch.Tensor) -> torch.Tensor:
    """Rows of `table` for integer labels [N], or their mixture for weights [N, classes] (soft labels)."""
    return labels.to(table.weight.dtype) @ table.weight if labels.is_floating_point() else table(labels)


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose scale and shift depend on the class: y = γ_c ⊙ (x − μ_B) / σ_B + β_c,
    per feature of x [N, C] (1d) or per channel of feature maps [N, C, H, W] (2d)."""

    batch_norm: type[nn.Module]

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.norm = self.batch_norm(num_features, affine=False)
        self.scale = nn.Embedding(num_classes, num_features)     # γ_c, starts at 1
        self.shift = nn.Embedding(num_classes, num_features)     # β_c, starts at 0
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        per_channel = (len(x), -1) + (1,) * (x.dim() - 2)         # broadcast over the positions of a map
        return embed(self.scale, labels).view(per_channel) * self.norm(x) + embed(self.shift, labels).view(per_channel)


class ConditionalBatchNorm1d(ConditionalBatchNorm):
    batch_norm = nn.BatchNorm1d


class ConditionalBatchNorm2d(ConditionalBatchNorm):
    batch_norm = nn.BatchNorm2d


class ConditionedGenerator(nn.Module):
    """z [N, latent_dim] (+ labels [N] when conditional) -> images [N, 1, 28, 28] in [-1, 1].

    `num_classes`: digit labels a user passes (a cGAN); `num_clusters`: pseudo-classes G draws
    from z. Subclasses build `net` (taking `input_width` features) with batch norms from `batch_norm`.
    """

    net: nn.Sequential

    def __init__(self, latent_dim: int = 100, num_classes: int = 0, conditional_bn: bool = False,
                 num_clusters: int = 0):
        super().__init__()
        if num_classes and num_clusters:
            raise ValueError("a generator is conditioned on digit labels or on clusters, not both")
        conditions = num_classes or num_clusters
        if conditional_bn and not conditions:
            raise ValueError("conditional batch norm needs num_classes or num_clusters")
        self.latent_dim, self.num_classes, self.conditional_bn = latent_dim, num_classes, conditional_bn
        self.num_clusters, self.num_conditions = num_clusters, conditions
        if num_clusters:   # images per cluster in the data (integers: exact in any export); equal until set
            self.register_buffer("cluster_sizes", torch.ones(num_clusters, dtype=torch.long))
        concatenated = conditions if conditions and not conditional_bn else 0
        self.label_embedding = nn.Embedding(conditions, conditions) if concatenated else None
        self.input_width = latent_dim + concatenated

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def batch_norm(self, num_features: int, maps: bool = False) -> nn.Module:
        """Batch norm of features (`maps`: of channels), with a scale and shift per condition under conditional_bn."""
        if self.conditional_bn:
            return (ConditionalBatchNorm2d if maps else ConditionalBatchNorm1d)(num_features, self.num_conditions)
        return (nn.BatchNorm2d if maps else nn.BatchNorm1d)(num_features)

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
            x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm) else layer(x)
        return x.reshape(-1, *IMAGE_SHAPE)


class ConditionedDiscriminator(nn.Module):
    """images [N, 1, 28, 28] (+ labels) -> logit [N, 1] that the image is real.

    `net` is φ then the output layer ψ (its last layer), and `inputs` what it reads: the
    image, with the label embedding joined unless `projection`. Subclasses build both, then
    call `add_projection(width of φ)`.
    """

    net: nn.Sequential

    def __init__(self, num_classes: int = 0, projection: bool = False):
        super().__init__()
        if projection and not num_classes:
            raise ValueError("a projection discriminator needs num_classes")
        self.num_classes, self.projection = num_classes, projection
        concatenated = num_classes if num_classes and not projection else 0
        self.label_embedding = nn.Embedding(num_classes, num_classes) if concatenated else None

    def add_projection(self, width: int) -> None:
        if self.projection:
            self.class_projection = nn.Embedding(self.num_classes, width)  # e_c
            bound = 1 / math.sqrt(width)                                  # like nn.Linear's init
            nn.init.uniform_(self.class_projection.weight, -bound, bound)

    def inputs(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """What `net` reads (each architecture's own)."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.inputs(images, labels)
        if not self.projection:
            return self.net(x)
        features = self.net[:-1](x)                                                # φ(x)
        return self.net[-1](features) + (self.class_projection(labels) * features).sum(1, keepdim=True)

    def probability(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D(x): the sigmoid probability that `images` are real."""
        return torch.sigmoid(self(images, labels))
