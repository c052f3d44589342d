"""Seeds and the stateless random streams that make runs reproducible and resumable."""

import torch


def seed_everything(seed: int) -> None:
    """Seed torch's global generators (CPU and every CUDA device); used for weight init."""
    torch.manual_seed(seed)


def generator(seed: int, *streams: int) -> torch.Generator:
    """A CPU generator for one named random stream, e.g. (seed, epoch) for a data order.

    Deriving each stream from the seed (instead of drawing from one long sequence) lets a
    resumed run rebuild any epoch's order without replaying the epochs before it.
    """
    key = seed
    for stream in streams:
        key = (key * 1_000_003 + stream + 1) % (2**63 - 1)
    return torch.Generator().manual_seed(key)


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The shuffled order of `n` training items in `epoch` (a LongTensor on the CPU)."""
    return torch.randperm(n, generator=generator(seed, 0x0DE, epoch))
