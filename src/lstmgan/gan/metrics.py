"""Sample-quality metrics on the features of the fixed classifier (see classifier.py).

* FID: Fréchet distance between Gaussians fitted to real and generated features,
  |μ_r − μ_g|² + tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½).
* Inception Score: exp E_x KL(p(y|x) ‖ p(y)), with the classifier's p(y|x).
* Mode coverage: the histogram of predicted classes and its KL divergence to uniform.
* Precision / recall (Kynkäänniemi et al. 2019): a generated sample is "precise" if it
  falls inside the k-NN ball (k = 3) of some real sample; a real sample is "recalled"
  if it falls inside the k-NN ball of some generated sample.
* For a conditional model, the fraction of samples classified as the requested digit.
* Nearest distances (the memorisation check).

Each metric is named once, in the table METRICS. The one `Scorer` applies them: training's
evaluations and `gan evaluate` (evaluate.py, which also documents the protocol: reference, floor,
copy rate) both call it, so the reference's features are computed once and every score is
computed the same way.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import numpy as np
import torch

from ..errors import UsageError
from ..seeding import Stream, random_stream
from . import mnist
from .classifier import load_classifier, to_unit_range
from .clusters import centroid_mismatch
from .models import generate


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
    `real_features`, `real_labels` and `real_gaussian`: a Scorer). What several metrics share (the class
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

    `compute(sample)`: its value for a `Sample`; None for those that need more than the samples (`needs`:
    "floor", the real-vs-real FID of the same size and shares; "centroids", a cluster-conditioned run's pixel
    centroids; "ema_slow", a run's second, slower EMA of G, scored in training), which their callers add.
    `scale`: shown times this in tables (100: a share in %); `digits`: decimals shown. `conditional`: it reads
    the digits asked for, so it applies to conditional generators only.
    """

    name: str
    title: str
    compute: Callable[[Sample], float] | None
    scale: float = 1
    digits: int = 3
    conditional: bool = False
    needs: str = "samples"

    def applies(self, conditional: bool, clustered: bool, slow_ema: bool = False) -> bool:
        return ((conditional or not self.conditional) and (clustered or self.needs != "centroids")
                and (slow_ema or self.needs != "ema_slow"))


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
    Metric("fid_ema_slow", "FID, slower EMA", None, digits=2, needs="ema_slow"),
]


def sample_metrics(clustered: bool = False, slow_ema: bool = False) -> list[str]:
    """The metrics an evaluation of samples logs (metrics.csv): every one computed from the samples (the
    conditional ones blank for an unconditional run), the cluster check for a cluster-conditioned run, and the
    slower EMA's FID for a run that keeps one."""
    return [m.name for m in METRICS if m.compute is not None
            or (clustered and m.needs == "centroids") or (slow_ema and m.needs == "ema_slow")]


# ------------------------------------------------------------------ the one scorer

FLOOR_DRAWS = 10          # real-vs-real draws behind the floor and its noise band
BAND_SDS = 3              # the band is the floor's mean ± 3 standard deviations over those draws
COPY_QUANTILE = 0.01      # a sample "copies" when it is nearer its training neighbour than 99% of unseen real images


def labels_at_shares(reference_labels: torch.Tensor, n: int) -> torch.Tensor:
    """n digit labels, grouped 0, 0, ..., 9, at the shares of `reference_labels` (counts sum to n)."""
    counts = mnist.class_counts(torch.bincount(reference_labels.cpu(), minlength=mnist.NUM_CLASSES), n)
    return torch.arange(len(counts)).repeat_interleave(counts)


class CopyCheck:
    """Nearest-training-image distances in feature space, and the copy threshold: the 1% quantile of those of the
    null, real images from the training source that the generator never saw (its validation split), so such
    images score 1% by construction. The test set's rate against the same threshold is kept beside it (another
    source: MNIST's test writers are not its training writers, so it scores apart from 1%)."""

    def __init__(self, train_features: torch.Tensor, null_features: torch.Tensor, test_features: torch.Tensor,
                 null_name: str = "val"):
        self.train_features = train_features
        null_distances = nearest_distances(null_features, train_features)
        self.threshold = float(torch.quantile(null_distances.double(), COPY_QUANTILE))
        self.null_name = null_name
        self.test_rate = self.rate(test_features)

    def share_below(self, distances: torch.Tensor) -> float:
        return (distances < self.threshold).double().mean().item()

    def rate(self, features: torch.Tensor) -> float:
        return self.share_below(nearest_distances(features, self.train_features))


class Scorer:
    """The one scorer of Part II: training's evaluations, `gan evaluate` and (through training) the sweeps.

    Scores image sets against `reference` (real images: the test set, or a run's validation split) on the
    features of the fixed classifier, with every metric of the table (metrics.METRICS), the floor drawn
    from `pool` (the training part) and, when `test` is given, the copy rate against `pool`, its threshold
    calibrated on `null` (images of the training source never trained on: the validation split; the test set
    when there is none), the test set's rate beside it. The reference's features and statistics are computed
    once."""

    def __init__(self, dataset: str, reference: mnist.ImageSet, pool: mnist.ImageSet,
                 test: mnist.ImageSet | None = None, device="cpu", reference_name: str = "test",
                 null: mnist.ImageSet | None = None, null_name: str = "val"):
        self.classifier, self.meta = load_classifier(dataset, device)
        self.dataset = dataset
        self.real = reference
        self.real_features, _ = classify(self.classifier, reference.images)
        self.real_labels = reference.labels.to(self.real_features.device)
        self.real_gaussian = gaussian(self.real_features)
        self.reference_name = reference_name
        self.pool = pool
        self._pool_features = torch.zeros(len(pool), self.real_features.shape[1], device=self.real_features.device)
        self._pool_probs: dict[int, torch.Tensor] = {}
        self._known = torch.zeros(len(pool), dtype=torch.bool)
        self._test = test
        self._null, self._null_name = (null, null_name) if null is not None else (test, "test")
        self._copy: CopyCheck | None = None

    @property
    def reference_labels(self) -> torch.Tensor:
        return self.real_labels

    @torch.no_grad()
    def pool_features(self, index: torch.Tensor) -> torch.Tensor:
        """Features of pool images, classified once each and only when first asked for."""
        missing = index[~self._known[index]].unique()
        if len(missing):
            self._pool_features[missing.to(self._pool_features.device)] = classify(
                self.classifier, self.pool.images[missing])[0]
            self._known[missing] = True
        return self._pool_features[index.to(self._pool_features.device)]

    def copy_check(self) -> CopyCheck | None:
        if self._copy is None and self._test is not None:
            test_features, null_features = (self.real_features if images is self.real
                                            else classify(self.classifier, images.images)[0]
                                            for images in (self._test, self._null))
            self._copy = CopyCheck(self.pool_features(torch.arange(len(self.pool))), null_features, test_features,
                                   self._null_name)
        return self._copy

    def labels_for(self, n: int) -> torch.Tensor:
        """The digits a conditional generator is asked for: the reference's shares."""
        return labels_at_shares(self.reference_labels, n)

    def floor_index(self, n: int, labels: torch.Tensor | None, seed: int, draw: int) -> torch.Tensor:
        """Pool images of one real-vs-real draw: the labels' digit counts, or n at random without labels."""
        rng = random_stream(seed, Stream.REAL_REFERENCE, draw)
        if labels is None:
            if n > len(self.pool):
                raise UsageError(f"--n {n}: the floor needs as many real training images, and there are "
                                 f"{len(self.pool)}")
            return torch.randperm(len(self.pool), generator=rng)[:n]
        chosen = []
        for digit, count in enumerate(torch.bincount(labels.cpu(), minlength=mnist.NUM_CLASSES).tolist()):
            members = (self.pool.labels == digit).nonzero().squeeze(1)
            if count > len(members):
                raise UsageError(f"--n: the floor needs {count} real training images of class {digit}, and "
                                 f"there are {len(members)}")
            chosen.append(members[torch.randperm(len(members), generator=rng)[:count]])
        return torch.cat(chosen)

    @torch.no_grad()
    def floor(self, n: int, labels: torch.Tensor | None, seed: int = 0) -> dict:
        """The real-data floor of FID for n images at `labels`' shares, and its noise band."""
        fids = [self.fid_of(self.pool_features(self.floor_index(n, labels, seed, draw)))
                for draw in range(FLOOR_DRAWS)]
        mean, sd = statistics.fmean(fids), statistics.stdev(fids)
        return {"fid_floor": mean, "fid_floor_sd": sd, "fid_floor_draws": fids,
                "fid_ratio_band": [(mean - BAND_SDS * sd) / mean, (mean + BAND_SDS * sd) / mean]}

    @torch.no_grad()
    def floor_metrics(self, n: int, labels: torch.Tensor | None, seed: int = 0) -> dict:
        """Every metric of the floor's first draw (precision, recall, ...), as a generator's are reported."""
        index = self.floor_index(n, labels, seed, 0)
        probs = torch.softmax(self.classifier.head(self.pool_features(index)), dim=1)
        return self.score_features(self.pool_features(index), probs, labels)

    def score_features(self, features: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor | None = None,
                       k: int = 3) -> dict:
        """Every metric of the table that the samples decide, for images already through the classifier
        (`classify`), with the class histogram and, for a conditional generator, each digit's precision and
        recall."""
        sample = Sample(self, features, probs, labels, k)
        conditional = labels is not None
        result = {m.name: m.compute(sample) for m in METRICS
                  if m.compute is not None and m.applies(conditional, clustered=False)}
        result["class_histogram"] = sample.histogram
        if conditional:
            result["per_class_precision"], result["per_class_recall"] = sample.per_class
        return result

    def fid_of(self, features: torch.Tensor) -> float:
        return frechet_distance(*self.real_gaussian, *gaussian(features))

    @torch.no_grad()
    def score_generator(self, G, n: int, seed: int, centroids: torch.Tensor | None = None) -> dict:
        """Training's evaluation of G: n samples from the evaluation noise (a conditional G asked for the
        reference's shares), without floor or copy check; with the `centroids` of a cluster-conditioned run
        also cluster_mismatch, the share of samples G drew for cluster c that lie nearest another centroid."""
        images, labels = generator_samples(G, self, n, seed)
        scores = self.score(images, labels, seed, with_floor=False, with_copies=False)
        if centroids is not None:
            scores["cluster_mismatch"] = cluster_mismatch(G, images, seed, centroids).share
        return scores

    @torch.no_grad()
    def score(self, images: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0,
              with_floor: bool = True, with_copies: bool = True) -> dict:
        """Every metric of `images` (uint8 [N, 28, 28] or float in [-1, 1]; `labels`: the digits asked for),
        with the floor, the ratio and its band, and the copy rate."""
        features, probs = classify(self.classifier, images)
        result = self.score_features(features, probs, labels)
        result["reference"] = {"set": self.reference_name, "size": len(self.real)}
        if with_floor:
            floor = self.floor(len(images), labels, seed)
            result.update(floor, fid_ratio=result["fid"] / floor["fid_floor"])
        copies = self.copy_check() if with_copies else None
        if copies is not None:
            result.update(copy_rate=copies.rate(features), copy_rate_test=copies.test_rate,
                          copy_threshold=copies.threshold, copy_calibrated_on=copies.null_name)
        return result


def evaluation_noise(latent_dim: int, n: int, seed: int) -> torch.Tensor:
    """The z [n, latent_dim] behind every scored sample set (CPU)."""
    return torch.randn(n, latent_dim, generator=random_stream(seed, Stream.EVALUATION))


def generator_samples(G, scorer: Scorer, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples of G from the evaluation noise stream; a conditional G is asked for the reference's shares."""
    z = evaluation_noise(G.latent_dim, n, seed)
    labels = scorer.labels_for(n) if G.conditional else None
    return generate(G, z, labels), labels


def cluster_mismatch(G, images: torch.Tensor, seed: int, centroids: torch.Tensor):
    """For a cluster-conditioned G and its samples `images` (drawn from `evaluation_noise`, in order): how
    often G(z, c) lies nearest a pixel k-means centroid other than c's (a `clusters.CentroidMismatch`)."""
    z = evaluation_noise(G.latent_dim, len(images), seed)
    return centroid_mismatch(images, G.cluster_of(z.to(G.cluster_sizes.device)), centroids)
