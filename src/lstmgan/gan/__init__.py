"""Part II: GANs on MNIST — models and the run configuration.

`Generator` and `Discriminator` are the seed's MLP networks (`--arch mlp`); every architecture
is in `architectures`, each in its own module (`mlp`, `conv`). Data (`mnist`), training
(`train`), sampling (`sample`) and metrics (`metrics`) are submodules, imported where they are used.
"""

from .config import GANConfig
from .mlp import Discriminator, Generator

__all__ = ["Generator", "Discriminator", "GANConfig"]
