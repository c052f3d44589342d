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

import numpy as np
import torch

from ..seeding import Stream, random_stream
from . import mnist
from .classifier import load_classifier, to_unit_range


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


class QualityMeter:
    """Scores image sets against a reference set of real images; its statistics are computed once.

    The reference is the data set's test split by default (for reporting); training passes
    its validation split instead, so that choosing a snapshot never reads the test set.
    """

    def __init__(self, dataset: str = "mnist", data_dir=None, device="cpu", reference=None):
        self.classifier, self.meta = load_classifier(dataset, device)
        self.dataset = dataset
        self.data_dir = data_dir
        self.real = reference if reference is not None else mnist.load(dataset, "test", data_dir)
        self.real_features, _ = classify(self.classifier, self.real.images)
        self.real_labels = self.real.labels.to(self.real_features.device)
        self.real_gaussian = gaussian(self.real_features)

    def score(self, images: torch.Tensor, labels: torch.Tensor | None = None, k: int = 3) -> dict:
        """All metrics for images (uint8 [N, 28, 28] or float in [-1, 1]); labels: requested digits."""
        return self.score_features(*classify(self.classifier, images), labels, k)

    def score_features(self, features: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor | None = None,
                       k: int = 3) -> dict:
        """All metrics for images already through the classifier (`classify`)."""
        histogram = class_histogram(probs)
        precision, recall = precision_recall(self.real_features, features, k)
        result = {"fid": frechet_distance(*self.real_gaussian, *gaussian(features)),
                  "inception_score": inception_score(probs), "precision": precision, "recall": recall,
                  "class_kl_to_uniform": kl_to_uniform(histogram), "class_histogram": histogram}
        if labels is not None:
            labels = labels.to(features.device)
            result["conditional_accuracy"] = (probs.argmax(1) == labels).double().mean().item()
            result["per_class_precision"], result["per_class_recall"] = per_class_precision_recall(
                self.real_features, self.real_labels, features, labels, len(histogram), k)
            result["min_class_recall"] = min(result["per_class_recall"])
        return result

    def fid_of(self, features: torch.Tensor) -> float:
        return frechet_distance(*self.real_gaussian, *gaussian(features))

    def reference(self, pool, n: int = 10000, seed: int = 0, with_labels: bool = False) -> dict:
        """The floor: the same metrics for `n` real images drawn from `pool` (disjoint from the reference)."""
        index = torch.randperm(len(pool), generator=random_stream(seed, Stream.REAL_REFERENCE))[:n]
        return self.score(pool.images[index], pool.labels[index] if with_labels else None)
