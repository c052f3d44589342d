"""Part I: memory in recurrent nets — a from-scratch LSTM, a vanilla RNN and palindromes.

Models, data and the run configuration only; training lives in `lstmgan.recurrent.train`
and sweeps in `lstmgan.recurrent.sweep`.
"""

from .config import PalindromeConfig
from .lstm import LSTM
from .palindrome import PalindromeDataset, make_palindrome_splits, num_palindromes, random_palindromes
from .rnn import VanillaRNN

__all__ = ["LSTM", "VanillaRNN", "make_palindrome_splits", "PalindromeDataset", "PalindromeConfig",
           "num_palindromes", "random_palindromes"]
