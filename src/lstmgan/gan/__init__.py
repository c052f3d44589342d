"""Part II: GANs on MNIST — models and the run configuration.

Data (`mnist`), training (`train`), sampling (`sample`) and metrics (`metrics`) are
submodules, imported where they are used.
"""

from .config import GANConfig
from .models import Discriminator, Generator

__all__ = ["Generator", "Discriminator", "GANConfig"]
