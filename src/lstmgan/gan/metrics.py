"""Sample-quality metrics on the features of the fixed classifier (see classifier.py).

* FID: Fréchet distance between Gaussians fitted to real and generated features,
  |μ_r − μ_g|² + tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½).
* Inception Score: exp E_x KL(p(y|x) ‖ p(y)), with the classifier's p(y|x).
* Mode coverage: the histogram of predicted classes and its KL divergence to uniform.
* Precision / recall (Kynkäänniemi et al. 2019): a generated sample is "precise" if it
  falls inside the k-NN ball (k = 3) of some real sample; a real sample is "recalled"
  if it falls inside the k-NN ball of some generated sample.
* For a conditional model, the fraction of samples classified as the requested digit.
* Nearest distances (the memorisation check of evaluate.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import numpy as np
import torch

from . import mnist
from .classifier import to_unit_range


@torch.no_grad()
def classify(classifier, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(features [N, 128], class probabilities [N, classes]) on the classifier's device."""
    device = next(classifier.parameters()).device
    features, probs = [], []
    for start in range(0, len(images), batch_size):
        x = to_unit_range(images[start:start + batch_size]).to(device)
        f = classifier.features(x)
        features.append(f)
        probs.append(torch.softmax(classifier.head(f), dim=1))
    return torch.cat(features), torch.cat(probs)


def gaussian(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    x = features.double().cpu().numpy()
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """FID between two Gaussians; tr((Σ1 Σ2)^½) via the symmetric form Σ1^½ Σ2 Σ1^½."""
    w1, v1 = np.linalg.eigh(sigma1)
    sqrt1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
    middle = sqrt1 @ sigma2 @ sqrt1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def inception_score(probs: torch.Tensor) -> float:
    p = probs.double().clamp_min(1e-12)
    marginal = p.mean(0, keepdim=True)
    return float(torch.exp((p * (p.log() - marginal.log())).sum(1).mean()))


def class_histogram(probs: torch.Tensor, num_classes: int = mnist.NUM_CLASSES) -> list[float]:
    counts = torch.bincount(probs.argmax(1).cpu(), minlength=num_classes).double()
    return (counts / counts.sum()).tolist()


def kl_to_uniform(histogram: list[float]) -> float:
    k = len(histogram)
    return float(sum(h * math.log(h * k) for h in histogram if h > 0))


def _kth_neighbour_radius(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    radii = []
    for start in range(0, len(x), chunk):
        d = torch.cdist(x[start:start + chunk], x)
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, -1])   # k+1: skip the point itself
    return torch.cat(radii)


def _coverage(queries: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> float:
    """Fraction of `queries` inside at least one ball (support point, radius)."""
    inside = 0
    for start in range(0, len(queries), chunk):
        d = torch.cdist(queries[start:start + chunk], support)
        inside += (d <= radii[None, :]).any(1).sum().item()
    return inside / len(queries)


def nearest_distances(queries: torch.Tensor, support: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Each query's Euclidean distance to its nearest support point, in chunks (60,000 x 10,000 fits)."""
    queries, support = queries.float(), support.float()
    return torch.cat([torch.cdist(queries[start:start + chunk], support).amin(1)
                      for start in range(0, len(queries), chunk)])


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    real, fake = real.float(), fake.float()
    real_radii, fake_radii = _kth_neighbour_radius(real, k), _kth_neighbour_radius(fake, k)
    return _coverage(fake, real, real_radii), _coverage(real, fake, fake_radii)


def per_class_precision_recall(real_features, real_labels, fake_features, fake_labels, num_classes: int,
                               k: int = 3) -> tuple[list[float], list[float]]:
    """Precision and recall of each class's samples against that class's real images.

    Collapse inside a class (a "7" always drawn in the same few styles) shows here as a low
    recall for that class, even when the pooled recall looks fine.
    """
    precisions, recalls = [], []
    for c in range(num_classes):
        real, fake = real_features[real_labels == c], fake_features[fake_labels == c]
        if len(real) <= k or len(fake) <= k:
            precisions.append(float("nan"))
            recalls.append(float("nan"))
            continue
        precision, recall = precision_recall(real, fake, k)
        precisions.append(precision)
        recalls.append(recall)
    return precisions, recalls


@dataclass
class Sample:
    """One scored image set, as the metrics read it: its classifier features and class probabilities, the digits
    asked for (None: an unconditional generator), and the real reference it is scored against (anything with
    `real_features`, `real_labels` and `real_gaussian`: evaluate.Scorer). What several metrics share (the class
    histogram, precision/recall) is computed once, when first read."""

    reference: Any
    features: torch.Tensor
    probs: torch.Tensor
    labels: torch.Tensor | None = None
    k: int = 3

    @cached_property
    def histogram(self) -> list[float]:
        return class_histogram(self.probs)

    @cached_property
    def precision_recall(self) -> tuple[float, float]:
        return precision_recall(self.reference.real_features, self.features, self.k)

    @cached_property
    def per_class(self) -> tuple[list[float], list[float]]:
        return per_class_precision_recall(self.reference.real_features, self.reference.real_labels, self.features,
                                          self.labels.to(self.features.device), len(self.histogram), self.k)


@dataclass(frozen=True)
class Metric:
    """One quality metric, named once: training's metrics.csv, the sweeps' tables and `gan evaluate` read it here.

    `compute(sample)`: its value for a `Sample`; None for the two that need more than the samples (`needs`:
    "floor", the real-vs-real FID of the same size and shares; "centroids", a cluster-conditioned run's pixel
    centroids), which their callers add. `scale`: shown times this in tables (100: a share in %); `digits`:
    decimals shown. `conditional`: it reads the digits asked for, so it applies to conditional generators only.
    """

    name: str
    title: str
    compute: Callable[[Sample], float] | None
    scale: float = 1
    digits: int = 3
    conditional: bool = False
    needs: str = "samples"

    def applies(self, conditional: bool, clustered: bool) -> bool:
        return (conditional or not self.conditional) and (clustered or self.needs != "centroids")


METRICS: list[Metric] = [
    Metric("fid", "FID", lambda s: frechet_distance(*s.reference.real_gaussian, *gaussian(s.features)), digits=2),
    Metric("fid_ratio", "FID / floor", None, digits=2, needs="floor"),
    Metric("inception_score", "IS", lambda s: inception_score(s.probs), digits=2),
    Metric("precision", "precision", lambda s: s.precision_recall[0]),
    Metric("recall", "recall", lambda s: s.precision_recall[1]),
    Metric("class_kl_to_uniform", "class KL", lambda s: kl_to_uniform(s.histogram)),
    Metric("min_class_share", "rarest digit %", lambda s: min(s.histogram), scale=100, digits=2),
    Metric("max_class_share", "commonest digit %", lambda s: max(s.histogram), scale=100, digits=2),
    Metric("conditional_accuracy", "requested digit %",
           lambda s: (s.probs.argmax(1) == s.labels.to(s.probs.device)).double().mean().item(), scale=100, digits=2,
           conditional=True),
    Metric("min_class_recall", "min digit recall", lambda s: min(s.per_class[1]), conditional=True),
    Metric("cluster_mismatch", "nearest another cluster %", None, scale=100, digits=2, needs="centroids"),
]


def sample_metrics(clustered: bool = False) -> list[str]:
    """The metrics an evaluation of samples logs (metrics.csv): every one computed from the samples (the
    conditional ones blank for an unconditional run), and the cluster check for a cluster-conditioned run."""
    return [m.name for m in METRICS if m.compute is not None or (clustered and m.needs == "centroids")]
