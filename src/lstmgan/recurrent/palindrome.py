"""The palindrome task: read the first T digits of a palindrome, predict the last one.

The last digit equals the first, so a model must carry one digit across T steps.
Palindromes are built digit by digit, so any T works, and a split's sequences are drawn
*without replacement* from one pool, so train and test never share a sequence.
`FreshPalindromes` instead draws new training palindromes at every step, never a test one.
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


FRESH_STREAM = 0xF4E54   # the random stream of `FreshPalindromes` (a number no `seeding.Stream` uses)
FINGERPRINT_PRIMES = (2_147_483_647, 2_147_483_629)   # the two largest primes below 2^31


def fingerprints(sequences: torch.Tensor) -> torch.Tensor:
    """One int64 per row of digits [N, L]: (Σ_i d_i w_i mod p) · q + (Σ_i d_i v_i mod q), w, v fixed random weights.

    Equal rows always get equal fingerprints; two different rows share one with chance about 1/(p·q) ≈ 2^-62.
    Each term d_i w_i mod p is below 2^31, so a sum over up to 2^32 digits stays exact in int64.
    """
    sequences = sequences.long()
    rng = torch.Generator().manual_seed(sequences.shape[1])     # the same weights for every row of this length
    parts = []
    for prime in FINGERPRINT_PRIMES:
        weights = torch.randint(1, prime, (sequences.shape[1],), generator=rng).to(sequences.device)
        parts.append((sequences * weights % prime).sum(1) % prime)
    return parts[0] * FINGERPRINT_PRIMES[1] + parts[1]


class FreshPalindromes:
    """Training batches of new palindromes at every step (`--data fresh`), never one of the test split's.

    Batch k is a function of (seed, T, k) alone: its digits come from a generator seeded with them, so a resumed
    run continues the same stream from any step. Whole palindromes are drawn uniformly (their free first half,
    mirrored); a row whose fingerprint (see `fingerprints`) matches a test sequence's is redrawn, in row order,
    until none does. So a test palindrome can never be trained on; a fingerprint collision could at worst redraw
    a row that was no test palindrome. Digits are drawn on the CPU, so the stream is the same on every device.
    """

    def __init__(self, test_split: PalindromeDataset | torch.Tensor, input_length: int, input_dim: int = 1,
                 num_classes: int = 10, seed: int = 0):
        test = test_split.sequences if isinstance(test_split, PalindromeDataset) else test_split
        if test.dim() != 2 or test.shape[1] != input_length + 1:
            raise ValueError(f"the test split must hold sequences of length T + 1 = {input_length + 1}, "
                             f"got shape {list(test.shape)}")
        self.input_length, self.input_dim, self.num_classes, self.seed = input_length, input_dim, num_classes, seed
        # in blocks of rows, so a long test split never needs a whole [N, T + 1] int64 copy at once
        self.test_fingerprints = torch.unique(torch.cat([fingerprints(rows.cpu()) for rows in test.split(4096)]))
        if len(self.test_fingerprints) >= num_palindromes(input_length, num_classes):
            raise ValueError(f"the test split holds all {num_palindromes(input_length, num_classes)} palindromes "
                             f"of length {input_length + 1}: none is left to train on")

    def sequences(self, step: int, batch_size: int) -> torch.Tensor:
        """Batch `step`'s whole palindromes [batch_size, T + 1] (int64, CPU)."""
        rng = random_stream(self.seed, FRESH_STREAM, self.input_length, step)
        free = (self.input_length + 2) // 2
        halves = torch.randint(self.num_classes, (batch_size, free), generator=rng)
        while True:             # rounds of redraws, each over every row still hitting the test split at once
            seq = mirror(halves, self.input_length)
            hits = torch.isin(fingerprints(seq), self.test_fingerprints).nonzero().squeeze(1)
            if not len(hits):
                return seq
            halves[hits] = torch.randint(self.num_classes, (len(hits), free), generator=rng)

    def batch(self, step: int, batch_size: int, device: torch.device | str = "cpu"
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x float [batch_size, T, input_dim], y int64 [batch_size]) on `device`, as `PalindromeDataset.batch`."""
        seq = self.sequences(step, batch_size).to(device)
        return encode_digits(seq[:, :-1], self.input_dim, self.num_classes), seq[:, -1]
