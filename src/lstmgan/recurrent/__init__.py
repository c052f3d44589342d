"""Part I: memory in recurrent nets — a from-scratch LSTM, a vanilla RNN, a GRU and palindromes.

Models (one file each, named in `registry`), data and the run configuration only; training
lives in `lstmgan.recurrent.train` and sweeps in `lstmgan.recurrent.sweep`.
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
