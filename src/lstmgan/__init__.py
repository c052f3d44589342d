"""lstmgan: a from-scratch LSTM on palindromes, and GANs on MNIST, measured."""

__version__ = "0.1.0"

from .checkpoint import LoadedCheckpoint, load_checkpoint  # noqa: E402

__all__ = ["load_checkpoint", "LoadedCheckpoint", "__version__"]
