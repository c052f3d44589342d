"""The palindrome task: read the first T digits of a palindrome, predict the last one.

The last digit equals the first, so a model must carry one digit across T steps.
Palindromes are built digit by digit, so any T works, and a split's sequences are drawn
*without replacement* from one pool, so train and test never share a sequence.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..seeding import Stream, random_stream

ENUMERATE_LIMIT = 10_000_000   # pools up to this size are sampled by index, without replacement


class DataSizeWarning(UserWarning):
    """More palindromes were asked for than exist at this length."""


def num_palindromes(input_length: int, num_classes: int = 10) -> int:
    """Distinct palindromes of length T + 1 over `num_classes` digits: the free first half."""
    return num_classes ** ((input_length + 2) // 2)


def mirror(halves: torch.Tensor, input_length: int) -> torch.Tensor:
    """Free first halves [N, ceil((T+1)/2)] -> whole palindromes [N, T + 1]."""
    length = input_length + 1
    tail = halves.flip(1)[:, length % 2:]    # an odd length shares its middle digit
    return torch.cat([halves, tail], dim=1)


def random_palindromes(n: int, input_length: int, num_classes: int = 10, seed: int = 0,
                       dtype: torch.dtype = torch.long) -> torch.Tensor:
    """`n` distinct palindromes [n, T + 1] of `dtype` (int64 by default), in random order; n <= num_palindromes(...).

    `dtype=torch.uint8` keeps long sequences small (1,000 at T = 100,000: 100 MB instead of 800); the
    digits are the same whatever the dtype (they are drawn as bytes whenever num_classes fits in one).
    """
    free = (input_length + 2) // 2
    total = num_palindromes(input_length, num_classes)
    if n > total:
        raise ValueError(f"only {total} distinct palindromes of length {input_length + 1} exist")
    rng = random_stream(seed, Stream.PALINDROMES, input_length)
    if total <= ENUMERATE_LIMIT:
        index = torch.randperm(total, generator=rng)[:n]
        powers = num_classes ** torch.arange(free - 1, -1, -1)
        halves = index[:, None] // powers % num_classes
    else:   # a huge pool: draw, drop the (rare) duplicates, top up
        digit = torch.uint8 if num_classes <= 256 else torch.long   # randint draws the same values either way
        halves = torch.empty(0, free, dtype=digit)
        while len(halves) < n:
            draw = torch.randint(num_classes, (n - len(halves) + 16, free), generator=rng, dtype=digit)
            halves = torch.unique(torch.cat([halves, draw]), dim=0)
        halves = halves[torch.randperm(len(halves), generator=rng)[:n]]
    return mirror(halves.to(dtype), input_length)


def encode_digits(digits: torch.Tensor, input_dim: int, num_classes: int = 10) -> torch.Tensor:
    """Digits [..., T] -> float inputs [..., T, input_dim]: raw value (input_dim 1) or one-hot."""
    if input_dim == 1:
        return digits.unsqueeze(-1).float()
    return F.one_hot(digits, num_classes).float()


class PalindromeDataset(Dataset):
    """Whole palindromes; item i is (x float [T, input_dim], y int64 last digit)."""

    def __init__(self, sequences: torch.Tensor, input_dim: int = 1, num_classes: int = 10):
        self.sequences = sequences
        self.input_dim = input_dim
        self.num_classes = num_classes

    @property
    def input_length(self) -> int:
        return self.sequences.shape[1] - 1

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i):
        seq = self.sequences[i].long()
        return encode_digits(seq[:-1], self.input_dim, self.num_classes), seq[-1]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x [len(index), T, input_dim], y) for many items at once, no per-item Python work."""
        seq = self.sequences[index].long()           # sequences may be stored as bytes
        return encode_digits(seq[:, :-1], self.input_dim, self.num_classes), seq[:, -1]


def make_palindrome_splits(input_length: int, data_size: int = 100000, portion_train: float = 0.8,
                           input_dim: int = 1, seed: int = 0, num_classes: int = 10
                           ) -> tuple[PalindromeDataset, PalindromeDataset]:
    """Draw one pool of distinct palindromes and split it: train and test never share a sequence.

    When `data_size` exceeds the number of distinct palindromes (T = 5 has only 1000),
    warn once and use all of them.
    """
    total = num_palindromes(input_length, num_classes)
    if data_size > total:
        warnings.warn(f"only {total} distinct palindromes of length {input_length + 1} exist (input length "
                      f"{input_length} + the target); "
                      f"using all {total} instead of data_size {data_size}", DataSizeWarning, stacklevel=2)
        data_size = total
    pool = random_palindromes(data_size, input_length, num_classes, seed)
    n_train = round(data_size * portion_train)
    if not 0 < n_train < data_size:
        raise ValueError(f"portion_train {portion_train} of {data_size} sequences leaves an empty split")
    return (PalindromeDataset(pool[:n_train], input_dim, num_classes),
            PalindromeDataset(pool[n_train:], input_dim, num_classes))
