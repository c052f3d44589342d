"""Part II: GANs on MNIST — models, data, training, sampling and quality metrics."""

from .models import Discriminator, Generator
from .train import GANConfig

__all__ = ["Generator", "Discriminator", "GANConfig"]
