"""Pseudo-classes for an unconditional GAN: k-means on the training pixels, no labels read.

A self-conditioned GAN (Liu et al., "Diverse Image Generation via Self-Conditioned GANs",
CVPR 2020) trains G and D conditioned on cluster indices of the real images and lets G draw
the cluster itself, with the clusters' frequencies in the data. The data's mixture of digits
and styles is then fixed by that prior instead of drifting with the GAN's dynamics, which is
how an unconditional GAN loses modes. Here the clusters are computed once, before training,
on raw pixels (the paper re-clusters D's features during training). The cluster check of a
generator (`centroid_mismatch`: how often G(z, c) lands nearest another cluster's centroid)
lives here too.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..seeding import Stream, random_stream

ITERATIONS = 30          # Lloyd steps; MNIST's assignments stop changing well before this
CHUNK = 8192             # rows per distance block (bounded memory for any data size)


def nearest(points: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of the nearest centroid, squared distance to it) for each row of `points`."""
    indices, distances = [], []
    c_norm = (centroids * centroids).sum(1)
    for start in range(0, len(points), CHUNK):
        x = points[start:start + CHUNK]
        # ‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖²  (one GEMM per block)
        d = (x * x).sum(1, keepdim=True) - 2 * x @ centroids.T + c_norm
        best = d.min(1)
        indices.append(best.indices)
        distances.append(best.values.clamp_min(0))
    return torch.cat(indices), torch.cat(distances)


def kmeans(points: torch.Tensor, k: int, seed: int = 0,
           iterations: int = ITERATIONS) -> tuple[torch.Tensor, torch.Tensor]:
    """(cluster index [N], centroids [k, D]) of k-means with k-means++ seeding; deterministic per seed."""
    points = points.reshape(len(points), -1).double()
    if not 1 <= k <= len(points):
        raise ValueError(f"k must be in 1..{len(points)} (got {k})")
    rng = random_stream(seed, Stream.CLUSTERS)
    # k-means++: each new centroid is a point drawn with probability ∝ its squared distance to the nearest one so far
    chosen = [points[torch.randint(len(points), (1,), generator=rng)]]
    d = nearest(points, chosen[0])[1]
    for _ in range(1, k):
        pick = torch.multinomial(d / d.sum(), 1, generator=rng) if d.sum() > 0 else torch.zeros(1, dtype=torch.long)
        chosen.append(points[pick])
        d = torch.minimum(d, nearest(points, chosen[-1])[1])
    centroids = torch.cat(chosen)
    for _ in range(iterations):
        assignment, _ = nearest(points, centroids)
        counts = torch.bincount(assignment, minlength=k).double()
        sums = torch.zeros_like(centroids).index_add_(0, assignment, points)
        moved = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centroids)   # keep empty ones
        if torch.equal(moved, centroids):
            break
        centroids = moved
    return nearest(points, centroids)[0], centroids.float()


def pixel_kmeans(images: torch.Tensor, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(the pseudo-class [N] of each uint8 image, the centroids [k, 784]): k-means on pixels scaled to [0, 1]."""
    return kmeans(images.double() / 255, k, seed)


def pixel_clusters(images: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """The pseudo-class [N] of each uint8 image: its k-means cluster on pixels scaled to [0, 1]."""
    return pixel_kmeans(images, k, seed)[0]


def pixel_centroids(images: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """The centroids [k, 784] (pixels in [0, 1]) of the same k-means, so centroid c is training's pseudo-class c."""
    return pixel_kmeans(images, k, seed)[1]


# ---------------------------------------------------------------- the cluster check of a generator

class CentroidMismatch(NamedTuple):
    share: float                  # samples nearest a centroid other than the one requested, of all
    requested: torch.Tensor       # [K] samples asked for per cluster
    mismatched: torch.Tensor      # [K] of those, nearest another centroid
    confusion: torch.Tensor       # [K, K] counts: requested cluster (row) × nearest centroid (column)


def centroid_mismatch(images: torch.Tensor, clusters_requested: torch.Tensor,
                      centroids: torch.Tensor) -> CentroidMismatch:
    """How often a cluster-conditioned G's image for cluster c lies nearest (Euclidean, in pixel space) a
    centroid other than c's.

    `images` [N, 1, 28, 28] (or [N, 784]) in [-1, 1], as G draws them; `clusters_requested` [N] the cluster
    each was drawn for (`G.cluster_of(z)`); `centroids` [K, 784] in [0, 1] (`clusters.pixel_centroids`). Distances
    are computed on the CPU in float64.
    """
    points = (images.detach().reshape(len(images), -1).cpu().double() + 1) / 2    # [-1, 1] -> k-means's pixel/255
    found = nearest(points, centroids.detach().cpu().double())[0]
    k, asked = len(centroids), clusters_requested.detach().cpu().long()
    confusion = torch.bincount(asked * k + found, minlength=k * k).view(k, k)     # row-major (requested, found)
    requested = confusion.sum(1)
    mismatched = requested - confusion.diagonal()
    return CentroidMismatch(float(mismatched.sum()) / max(1, len(images)), requested, mismatched, confusion)
