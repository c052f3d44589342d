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
  classifier's feature space, is closer than 99% of validation images' nearest training image is
  to them: real images of the training source that were never trained on score 1% by
  construction, and a generator that copies shows far more. The test set's rate against the same
  threshold is reported beside it (about 0.7% on MNIST: its writers are not the training file's).
  A run without a validation split calibrates on the test set.
"""

from __future__ import annotations

import functools
import itertools
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import UsageError
from ..loading import load_checkpoint
from . import mnist
from .metrics import Scorer, classify, cluster_mismatch, generator_samples
from .models import KIND, saved_config

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
    return Scorer(dataset, reference, pool, test, device, against, null=validation)


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
                        split_of=None, seeds: int = 1) -> dict:
    """Quality of a generator's n samples against the test set (or its validation split, `against="val"`):
    FID beside the real-data floor at the same shares and size, the ratio, copy rate, ...

    `checkpoint` may also be a .npy file of uint8 images [N, 28, 28] (scored as unlabelled samples,
    all N of them, against the default split's training part). `reference`: also every metric of
    the floor's first draw. `cluster_check`: for a cluster-conditioned generator, also how often a
    sample lands nearest another cluster's centroid (reruns training's k-means: about a minute for
    K = 50 on two cores, so only when asked). `split_of`: another generator's checkpoint whose split
    (validation reference, floor pool, copy check) replaces this one's, so that generators trained on
    different splits are scored on one (this one may have trained on part of that validation split).
    `seeds` > 1: also FID's mean and sd over that many sampling seeds (see `fid_over_seeds`).
    """
    if not isinstance(seeds, int) or seeds < 1:
        raise UsageError(f"--seeds must be a positive integer (got {seeds})")
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
    result["selection_seed"] = selection_seed(loaded.config)
    if seeds > 1:
        result["over_seeds"] = fid_over_seeds(loaded.model, scorer, n, reporting_seeds(seed, seeds, result[
            "selection_seed"]), result.get("fid_floor"))
    return finish(result, scorer, labels, seed, reference)


def selection_seed(config: dict) -> int | None:
    """The sampling seed whose samples chose the run's best.pt (its in-training evaluations use the run's seed),
    or None for a run that never evaluated in training."""
    return config.get("seed", 0) if config.get("eval_interval", 0) else None


def reporting_seeds(first: int, count: int, selection: int | None) -> list[int]:
    """`count` sampling seeds from `first` on, never the selection seed (its samples chose the snapshot, so
    scores on them flatter it)."""
    return list(itertools.islice((s for s in itertools.count(first) if s != selection), count))


def fid_over_seeds(G, scorer, n: int, seeds: list[int], floor: float | None) -> dict:
    """FID of n samples at each sampling seed: the generator's own sampling spread, and its mean ± sd."""
    fids = [scorer.fid_of(classify(scorer.classifier, generator_samples(G, scorer, n, s)[0])[0]) for s in seeds]
    mean, sd = statistics.fmean(fids), statistics.stdev(fids)
    return {"seeds": seeds, "fid": fids, "fid_mean": mean, "fid_sd": sd,
            **({"fid_ratio_mean": mean / floor} if floor else {})}


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
