"""Scoring a generator, or any set of images, against real data: the evaluation protocol of Part II.

* The reference is the test set (what docs/gan.md reports) or the run's own validation split
  (what model selection reads). A conditional generator is asked for digits at the reference's
  shares: FID punishes a digit mix unlike the reference's even in real images (10,000 real
  training images score 2.33-2.54 at equal shares, 1.32-1.53 at the test set's).
* The floor: real images from the training part of the generator's split, at the same digit
  counts as the samples (a conditional generator) or drawn at random (an unconditional one: a
  perfect one samples the training distribution), the same number, scored the same way.
  FLOOR_DRAWS such draws give its noise band, mean ± BAND_SDS standard deviations; `fid_ratio` is
  FID / floor, and a ratio inside `fid_ratio_band` cannot be told from real data.
* The copy rate (memorisation): the share of samples whose nearest training image, in the
  classifier's feature space, is closer than 99% of test images' nearest training image is to
  them. The test set's own rate is 1% by construction; a generator that copies shows far more.
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import UsageError
from ..loading import load_checkpoint
from ..seeding import Stream, random_stream
from . import mnist
from .classifier import load_classifier
from .metrics import METRICS, Sample, classify, frechet_distance, gaussian, nearest_distances
from .models import KIND, generate, saved_config

FLOOR_DRAWS = 10          # real-vs-real draws behind the floor and its noise band
BAND_SDS = 3              # the band is the floor's mean ± 3 standard deviations over those draws
COPY_QUANTILE = 0.01      # a sample "copies" when it is nearer its training neighbour than 99% of test images
REFERENCES = ("test", "val")


@dataclass(frozen=True)
class TrainingSplit:
    """Which training images a generator saw: all but the validation split (see mnist.split_off_validation)."""

    how: str = "stratified"
    size: int = 10000
    seed: int = 0

    @classmethod
    def of_config(cls, values: dict) -> "TrainingSplit":
        """The split a run's config records; a config from before --val-split used the file's tail."""
        config = saved_config(values)
        return cls(config.val_split, config.val_size, config.val_seed)

    def parts(self, dataset: str, data_dir=None) -> tuple[mnist.ImageSet, mnist.ImageSet | None]:
        return mnist.split_off_validation(mnist.load(dataset, "train", data_dir), self.size, self.how, self.seed)


def labels_at_shares(reference_labels: torch.Tensor, n: int) -> torch.Tensor:
    """n digit labels, grouped 0, 0, ..., 9, at the shares of `reference_labels` (counts sum to n)."""
    counts = mnist.class_counts(torch.bincount(reference_labels.cpu(), minlength=mnist.NUM_CLASSES), n)
    return torch.arange(len(counts)).repeat_interleave(counts)


class CopyCheck:
    """Nearest-training-image distances in feature space, and the test set's 1% threshold."""

    def __init__(self, train_features: torch.Tensor, test_features: torch.Tensor):
        self.train_features = train_features
        test_distances = nearest_distances(test_features, train_features)
        self.threshold = float(torch.quantile(test_distances.double(), COPY_QUANTILE))
        self.test_rate = self.share_below(test_distances)

    def share_below(self, distances: torch.Tensor) -> float:
        return (distances < self.threshold).double().mean().item()

    def rate(self, features: torch.Tensor) -> float:
        return self.share_below(nearest_distances(features, self.train_features))


class Scorer:
    """The one scorer of Part II: training's evaluations, `gan evaluate` and (through training) the sweeps.

    Scores image sets against `reference` (real images: the test set, or a run's validation split) on the
    features of the fixed classifier, with every metric of the table (metrics.METRICS), the floor drawn
    from `pool` (the training part) and, when `test` is given, the copy rate against `pool`. The
    reference's features and statistics are computed once."""

    def __init__(self, dataset: str, reference: mnist.ImageSet, pool: mnist.ImageSet,
                 test: mnist.ImageSet | None = None, device="cpu", reference_name: str = "test"):
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
            test = self._test
            test_features = (self.real_features if test is self.real
                             else classify(self.classifier, test.images)[0])
            self._copy = CopyCheck(self.pool_features(torch.arange(len(self.pool))), test_features)
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
                          copy_threshold=copies.threshold)
        return result


@functools.lru_cache(maxsize=2)
def scorer_for(dataset: str, data_dir, device: str, against: str, split: TrainingSplit) -> Scorer:
    """The scorer of one reference and split (cached: several generators share its features)."""
    if against not in REFERENCES:
        raise UsageError(f"the reference must be {' or '.join(REFERENCES)} (got {against!r})")
    pool, validation = split.parts(dataset, data_dir)
    test = mnist.load(dataset, "test", data_dir)
    if against == "val" and validation is None:
        raise UsageError("this run has no validation split (--val-size 0): score it against the test set")
    reference = test if against == "test" else validation
    return Scorer(dataset, reference, pool, test, device, against)


def read_samples(path: Path) -> torch.Tensor:
    """Images from a `gan sample --out FILE.npy` file: uint8 [N, 28, 28]."""
    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: not a readable .npy file ({error})") from None
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28) or not len(images):
        raise UsageError(f"{path}: expected uint8 images [N, 28, 28], got {images.dtype} {list(images.shape)}")
    return torch.from_numpy(images.copy())


def evaluate_checkpoint(checkpoint, n: int = 10000, seed: int = 0, device: str = "auto", data_dir=None,
                        reference: bool = True, against: str = "test", cluster_check: bool = False,
                        split_of=None) -> dict:
    """Quality of a generator's n samples against the test set (or its validation split, `against="val"`):
    FID beside the real-data floor at the same shares and size, the ratio, copy rate, ...

    `checkpoint` may also be a .npy file of uint8 images [N, 28, 28] (scored as unlabelled samples,
    all N of them, against the default split's training part). `reference`: also every metric of
    the floor's first draw. `cluster_check`: for a cluster-conditioned generator, also how often a
    sample lands nearest another cluster's centroid (reruns training's k-means: about a minute for
    K = 50 on two cores, so only when asked). `split_of`: another generator's checkpoint whose split
    (validation reference, floor pool, copy check) replaces this one's, so that generators trained on
    different splits are scored on one (this one may have trained on part of that validation split).
    """
    scored = split_of_run(split_of) if split_of is not None else None
    if str(checkpoint).lower().endswith(".npy"):
        return evaluate_samples_file(Path(checkpoint), seed, device, data_dir, reference, against, scored)
    if n < mnist.NUM_CLASSES:
        raise UsageError(f"--n must be at least {mnist.NUM_CLASSES} (got {n})")
    loaded = load_checkpoint(checkpoint, resolve_device(device), kind=KIND)
    dataset = loaded.config.get("dataset", "mnist")
    split = TrainingSplit.of_config(loaded.config)
    if scored is not None and scored[0] != dataset:
        raise UsageError(f"--split-of: that generator trained on {scored[0]}, this one on {dataset}")
    scorer = scorer_for(dataset, data_dir, str(resolve_device(device)), against, scored[1] if scored else split)
    images, labels = generator_samples(loaded.model, scorer, n, seed)
    progress = loaded.data.get("progress", {})
    result = {"checkpoint": str(checkpoint), "dataset": dataset, "n": n, "seed": seed,
              "conditional": loaded.model.conditional,
              # progress["epoch"] is the epoch a resume would start, so one more than the epochs done
              "epochs_completed": progress["epoch"] - 1 if "epoch" in progress else None,
              "training_split": asdict(split), **scorer.score(images, labels, seed)}
    if scored is not None:
        result["scored_split"] = {"of": str(split_of), **asdict(scored[1])}
    if labels is not None:
        result["label_counts"] = torch.bincount(labels, minlength=mnist.NUM_CLASSES).tolist()
    if cluster_check and getattr(loaded.model, "num_clusters", 0):
        config = saved_config(loaded.config)
        centroids = training_centroids(dataset, data_dir, split, config.clusters, config.seed)
        result.update(cluster_report(loaded.model, images, seed, centroids))
    return finish(result, scorer, labels, seed, reference)


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
    often G(z, c) lies nearest a pixel k-means centroid other than c's (a `regularize.CentroidMismatch`)."""
    from .regularize import centroid_mismatch

    z = evaluation_noise(G.latent_dim, len(images), seed)
    return centroid_mismatch(images, G.cluster_of(z.to(G.cluster_sizes.device)), centroids)


def cluster_report(G, images: torch.Tensor, seed: int, centroids: torch.Tensor) -> dict:
    """`gan evaluate`'s keys for a cluster-conditioned G: the mismatch share, and per cluster."""
    found = cluster_mismatch(G, images, seed, centroids)
    return {"cluster_mismatch": found.share, "cluster_requested": found.requested.tolist(),
            "cluster_mismatched": found.mismatched.tolist()}


@functools.lru_cache(maxsize=2)
def training_centroids(dataset: str, data_dir, split: TrainingSplit, k: int, seed: int) -> torch.Tensor:
    """The pixel k-means centroids [k, 784] a cluster-conditioned run trained on: training's k-means again, on
    the same training part with the run's seed (deterministic, so cluster c is the run's pseudo-class c).
    Cached: on 50,000 MNIST images and k = 50 it takes about a minute on two CPU cores."""
    from .clusters import pixel_centroids

    return pixel_centroids(split.parts(dataset, data_dir)[0].images, k, seed)


def split_of_run(checkpoint) -> tuple[str, TrainingSplit]:
    """The dataset and split another generator trained on (`gan evaluate --split-of`)."""
    config = load_checkpoint(checkpoint, "cpu", kind=KIND).config
    return config.get("dataset", "mnist"), TrainingSplit.of_config(config)


def evaluate_samples_file(path: Path, seed: int, device: str, data_dir, reference: bool, against: str,
                          scored: tuple[str, TrainingSplit] | None = None) -> dict:
    images = read_samples(path)
    split = scored[1] if scored else TrainingSplit()
    scorer = scorer_for("mnist", data_dir, str(resolve_device(device)), against, split)
    result = {"samples": str(path), "dataset": "mnist", "n": len(images), "seed": seed, "conditional": False,
              "training_split": asdict(split), **scorer.score(images, None, seed)}
    return finish(result, scorer, None, seed, reference)


def finish(result: dict, scorer: Scorer, labels, seed: int, reference: bool) -> dict:
    if reference:
        how = "at the same digit counts" if labels is not None else "at random"
        result["reference_real_data"] = {
            "what": f"{result['n']} real training images ({how}) vs the {scorer.reference_name} set, "
                    "the floor's first draw",
            **scorer.floor_metrics(result["n"], labels, seed)}
    result["classifier"] = {"dataset": scorer.dataset, "test_accuracy": scorer.meta["test_accuracy"],
                            "retrain": scorer.meta["command"]}
    return result
