"""Seeds, and the named random streams that make runs reproducible and resumable.

Each use of randomness draws from its own stream, derived from the run's seed and the
stream's name (plus an index such as the epoch). A resumed run rebuilds any epoch's order
without replaying the epochs before it, and adding a new use of randomness never shifts
the numbers an existing one draws.
"""

import enum

import torch


class Stream(enum.IntEnum):
    """The random streams, by use. The numbers are arbitrary but fixed: changing one changes results."""

    EPOCH_ORDER = 0x0DE              # the shuffled order of training items, per epoch
    PALINDROMES = 0xDA7A             # which palindromes make up a data set, per length
    GAN_NOISE = 0x2015E              # z and fake labels of GAN training steps
    PROGRESS_GRID = 0xF1ED           # the fixed z behind every progress grid of a run
    EVALUATION = 0xE7A1              # samples scored by in-training and `gan evaluate` metrics
    SAMPLING = 0x5A3                 # `gan sample`
    INTERPOLATION = 0x17E2           # the two endpoints of `gan interpolate`
    REAL_REFERENCE = 0x8EF           # which real images form the real-data floor
    CLASSIFIER_SHIFTS = 0xC1A5       # random translations while training the feature classifier
    CLUSTERS = 0xC1057               # the k-means++ seeds of a GAN's pseudo-classes
    DIFF_AUGMENT = 0xD1FA            # the shifts and cut-outs of --diff-augment, D's and G's steps alike


def seed_everything(seed: int) -> None:
    """Seed torch's global generators (CPU and every CUDA device); used for weight init."""
    torch.manual_seed(seed)


def random_stream(seed: int, stream: Stream | int, *index: int) -> torch.Generator:
    """A CPU random-number generator for one stream of a run, e.g. (seed, EPOCH_ORDER, epoch)."""
    key = seed
    for part in (stream, *index):
        key = (key * 1_000_003 + int(part) + 1) % (2**63 - 1)
    return torch.Generator().manual_seed(key)


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The shuffled order of `n` training items in `epoch` (a LongTensor on the CPU)."""
    return torch.randperm(n, generator=random_stream(seed, Stream.EPOCH_ORDER, epoch))
