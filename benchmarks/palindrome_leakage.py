"""How much of the test set the training set already contains: course sampling vs ours.

The course code drew `data_size` palindromes *with replacement* (numpy `choice(max_num,
total_len, replace=True)`) and split that list into train and test, so a test sequence
can also sit in the training set. Ours draws distinct sequences and splits the pool.

    python benchmarks/palindrome_leakage.py --lengths 5 10 --data-size 100000
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from lstmgan.recurrent import make_palindrome_splits, num_palindromes


def course_split(input_length: int, data_size: int, portion_train: float, seed: int):
    """Palindromes indexed by integers drawn with replacement, then cut into train / test."""
    rng = np.random.default_rng(seed)
    draws = rng.choice(num_palindromes(input_length), data_size, replace=True)
    n_train = int(data_size * portion_train)
    return draws[:n_train], draws[n_train:]


def overlap(train, test) -> tuple[float, float]:
    """(fraction of test items whose sequence also occurs in train, fraction of test that are repeats)."""
    train_set = set(train.tolist()) if isinstance(train, np.ndarray) else set(train)
    test = list(test.tolist()) if isinstance(test, np.ndarray) else list(test)
    leaked = sum(item in train_set for item in test) / len(test)
    repeats = 1 - len(set(test)) / len(test)
    return leaked, repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--data-size", type=int, default=100000)
    parser.add_argument("--portion-train", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| T | distinct palindromes | sampling | train / test sizes | test sequences also in train | "
          "repeated within test |")
    print("|---|---|---|---|---|---|")
    for T in args.lengths:
        train, test = course_split(T, args.data_size, args.portion_train, args.seed)
        leaked, repeats = overlap(train, test)
        print(f"| {T} | {num_palindromes(T):,} | course (with replacement) | {len(train)} / {len(test)} | "
              f"{100 * leaked:.1f}% | {100 * repeats:.1f}% |")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours_train, ours_test = make_palindrome_splits(T, args.data_size, args.portion_train, seed=args.seed)
        rows = lambda split: [tuple(r) for r in split.sequences.tolist()]  # noqa: E731
        leaked, repeats = overlap(rows(ours_train), rows(ours_test))
        print(f"| {T} | {num_palindromes(T):,} | lstmgan (distinct, split) | {len(ours_train)} / {len(ours_test)} | "
              f"{100 * leaked:.1f}% | {100 * repeats:.1f}% |")


if __name__ == "__main__":
    main()
