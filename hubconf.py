"""torch.hub entry points for lstmgan's shipped models; no install needed, nothing is unpickled.

    torch.hub.load("OWNER/lstmgan", "generator", name="mnist-cgan")       # any shipped generator by name
    torch.hub.load("OWNER/lstmgan", "palindrome", name="palindrome-T200")  # any shipped palindrome model
    torch.hub.load("OWNER/lstmgan", "mnist_cgan")                          # one entry per shipped model

The names are those of `src/lstmgan/weights/pretrained.json` ("@" and "-" become "_epoch" and "_"
in the per-model entries). Models come back in eval mode; a generator maps z [N, latent_dim]
(and labels [N] when conditional) to images [N, 1, 28, 28] in [-1, 1].
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from lstmgan.loading import load_checkpoint as _load_checkpoint  # noqa: E402
from lstmgan.shipped import pretrained_index as _pretrained_index  # noqa: E402

dependencies = ["torch", "numpy", "safetensors"]


def _load(name: str, kind: str, device: str):
    entry = _pretrained_index().get(name)
    if entry is None or entry["kind"] != kind:
        names = ", ".join(n for n, e in _pretrained_index().items() if e["kind"] == kind)
        raise ValueError(f"no shipped {kind} model {name!r} (shipped: {names})")
    return _load_checkpoint(f"pretrained:{name}", device=device, kind=kind).model


def generator(name: str = "mnist", device: str = "cpu"):
    """A shipped GAN generator by its pretrained name (e.g. "mnist", "mnist-cgan", "mnist@100")."""
    return _load(name, "gan", device)


def palindrome(name: str = "palindrome-T200", device: str = "cpu"):
    """A shipped palindrome classifier by its pretrained name (e.g. "palindrome-T1000")."""
    return _load(name, "palindrome", device)


def _entry_name(name: str) -> str:
    return name.replace("@", "_epoch").replace("-", "_")


def _entry(name: str, kind: str):
    def load(device: str = "cpu"):
        return _load(name, kind, device)
    load.__doc__ = f"The shipped {kind} model pretrained:{name}: {_pretrained_index()[name]['description']}"
    return load


for _name, _spec in _pretrained_index().items():
    globals()[_entry_name(_name)] = _entry(_name, _spec["kind"])
