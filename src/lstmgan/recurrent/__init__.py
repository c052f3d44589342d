"""Part I: memory in recurrent nets — a from-scratch LSTM, a vanilla RNN and palindromes."""

from .lstm import LSTM
from .palindrome import PalindromeDataset, make_palindrome_splits, num_palindromes, random_palindromes
from .rnn import VanillaRNN
from .train import PalindromeConfig, evaluate_checkpoint

__all__ = ["LSTM", "VanillaRNN", "make_palindrome_splits", "PalindromeDataset", "PalindromeConfig",
           "num_palindromes", "random_palindromes", "evaluate_checkpoint"]
# Training lives in `lstmgan.recurrent.train` (train, evaluate, ...); it is not re-exported here so
# that the module name is not shadowed by its function.
