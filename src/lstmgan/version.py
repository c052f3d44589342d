"""The package version (its own module so that anything may import it without a cycle)."""

__version__ = "0.2.0"
