"""Acceptance: leak-free, digit-by-digit palindrome splits of any length."""

import warnings

import pytest
import torch

from lstmgan.recurrent import make_palindrome_splits, num_palindromes, random_palindromes
from lstmgan.recurrent.palindrome import DataSizeWarning, PalindromeDataset


def rows(tensor):
    return {tuple(r) for r in tensor.tolist()}


def test_t5_uses_all_1000_palindromes_split_800_200_disjoint():
    with pytest.warns(DataSizeWarning, match="only 1000 distinct palindromes"):
        train, test = make_palindrome_splits(input_length=5, data_size=100000, portion_train=0.8)
    assert len(train) == 800 and len(test) == 200
    assert len(rows(train.sequences)) == 800 and len(rows(test.sequences)) == 200
    assert not rows(train.sequences) & rows(test.sequences)
    assert len(rows(train.sequences) | rows(test.sequences)) == num_palindromes(5) == 1000


def test_warns_only_once_per_call():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_palindrome_splits(input_length=3, data_size=5000)
    assert len([w for w in caught if issubclass(w.category, DataSizeWarning)]) == 1


@pytest.mark.parametrize("T", [36, 1000])
def test_long_palindromes_are_palindromes_with_first_digit_target(T):
    train, test = make_palindrome_splits(input_length=T, data_size=300, portion_train=0.8)
    for split in (train, test):
        seq = split.sequences
        assert seq.shape[1] == T + 1 and seq.dtype == torch.int64
        assert torch.equal(seq, seq.flip(1))
        x, y = split[0]
        assert x.shape == (T, 1) and y == seq[0, 0]
        assert torch.equal(seq[:, -1], seq[:, 0])
    assert len(rows(train.sequences)) == len(train)
    assert not rows(train.sequences) & rows(test.sequences)


def test_no_duplicates_in_a_large_pool():
    seq = random_palindromes(20000, input_length=10, seed=3)   # 10^6 palindromes: sampled by index
    assert len(rows(seq)) == 20000
    big = random_palindromes(5000, input_length=40, seed=3)   # 10^21: drawn and de-duplicated
    assert len(rows(big)) == 5000


@pytest.mark.parametrize("T", [1, 2, 5, 6])
def test_odd_and_even_lengths(T):
    seq = random_palindromes(num_palindromes(T), T)
    assert torch.equal(seq, seq.flip(1))
    assert len(rows(seq)) == num_palindromes(T) == 10 ** ((T + 2) // 2)


def test_encodings():
    train, _ = make_palindrome_splits(input_length=7, data_size=100, input_dim=10)
    x, y = train[0]
    assert x.shape == (7, 10) and torch.equal(x.sum(1), torch.ones(7))
    assert torch.equal(x.argmax(1), train.sequences[0, :-1])
    train1, _ = make_palindrome_splits(input_length=7, data_size=100, input_dim=1)
    x1, _ = train1[0]
    assert x1.shape == (7, 1) and torch.equal(x1[:, 0], train1.sequences[0, :-1].float())


def test_same_seed_same_data_other_seed_other_data():
    a, _ = make_palindrome_splits(input_length=12, data_size=500, seed=1)
    b, _ = make_palindrome_splits(input_length=12, data_size=500, seed=1)
    c, _ = make_palindrome_splits(input_length=12, data_size=500, seed=2)
    assert torch.equal(a.sequences, b.sequences) and not torch.equal(a.sequences, c.sequences)


def test_digits_cover_all_classes_uniformly_enough():
    seq = random_palindromes(5000, input_length=20)
    counts = torch.bincount(seq[:, 0], minlength=10)
    assert counts.min() > 400 and counts.max() < 600


@pytest.mark.parametrize("T", [5, 12, 3000])          # the enumerated pool, and the drawn one
def test_palindromes_as_bytes_are_the_same_digits(T):
    as_long = random_palindromes(40, T, seed=7)
    as_bytes = random_palindromes(40, T, seed=7, dtype=torch.uint8)
    assert as_long.dtype == torch.long and as_bytes.dtype == torch.uint8
    assert torch.equal(as_long, as_bytes.long())
    x, y = PalindromeDataset(as_bytes, input_dim=10).batch(torch.arange(40))
    x_ref, y_ref = PalindromeDataset(as_long, input_dim=10).batch(torch.arange(40))
    assert torch.equal(x, x_ref) and torch.equal(y, y_ref) and y.dtype == torch.long
