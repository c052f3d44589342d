"""Pick the torch device: `auto` prefers CUDA, then Apple's MPS, then the CPU."""

import re

import torch

from .errors import UsageError

DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a user's `--device` value into a usable `torch.device`, or raise UsageError."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine (try --device cpu)")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
        return torch.device(name)
    if name == "mps":
        if not _mps_available():
            raise UsageError("--device mps: Apple MPS is not available on this machine (try --device cpu)")
        return torch.device("mps")
    raise UsageError(f"--device {name!r} is not a device; choose auto, cpu, cuda, cuda:N or mps")
