"""lstmgan: a from-scratch LSTM on palindromes, and GANs on MNIST, measured."""

from .loading import LoadedCheckpoint, load_checkpoint
from .version import __version__

__all__ = ["load_checkpoint", "LoadedCheckpoint", "__version__"]
