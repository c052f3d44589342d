"""lstmgan: a from-scratch LSTM on palindromes, and GANs on MNIST, measured."""

from .gan import models as _gan_models  # noqa: F401  (registers the GAN checkpoints with the loader)
from .loading import LoadedCheckpoint, load_checkpoint
from .recurrent import models as _recurrent_models  # noqa: F401  (registers the palindrome checkpoints)
from .version import __version__

__all__ = ["load_checkpoint", "LoadedCheckpoint", "__version__"]
