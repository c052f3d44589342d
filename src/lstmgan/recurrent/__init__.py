"""Part I: memory on palindromes — a from-scratch LSTM, and every other model the registry names.

Models (one file each: lstm, rnn, gru, transformer, lru; each named, with its options and what it can
do, in `registry`), data and the run configuration only; training lives in `lstmgan.recurrent.train`
and sweeps in `lstmgan.recurrent.sweep`.
"""

from .config import PalindromeConfig
from .gru import GRU
from .lstm import LSTM
from .palindrome import PalindromeDataset, make_palindrome_splits, num_palindromes, random_palindromes
from .registry import REGISTRY, ModelSpec, build_model, model_spec, register_model
from .rnn import VanillaRNN

__all__ = ["LSTM", "VanillaRNN", "GRU", "make_palindrome_splits", "PalindromeDataset", "PalindromeConfig",
           "num_palindromes", "random_palindromes", "REGISTRY", "ModelSpec", "register_model", "model_spec",
           "build_model"]
