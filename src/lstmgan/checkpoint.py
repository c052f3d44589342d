"""The checkpoint file format of both parts: written atomically, read without running code.

A checkpoint is a single `torch.save` dict::

    {"format": "lstmgan-checkpoint", "format_version": 1, "kind": "palindrome" | "gan",
     "config": {...}, "model": state_dict, ... optimizer states, progress, RNG states ...}

It is read with `torch.load(weights_only=True)`, so a file that would need to unpickle
arbitrary objects (a `__reduce__` payload, say) is refused before any of it runs.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from .errors import UsageError

FORMAT = "lstmgan-checkpoint"
FORMAT_VERSION = 1
KINDS = ("palindrome", "gan")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write a file via a temp file beside it, flush + fsync, then rename over `path`.

    A crash at any instant leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~current_umask())   # mkstemp makes 0600; give the file normal permissions
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` made crash-safe with `atomic_write`."""
    atomic_write(path, lambda f: torch.save(obj, f))


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(directory: Path) -> None:
    """Make a rename inside `directory` durable (a no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path, kind: str, config: dict, model: dict, **payload) -> None:
    """Write a checkpoint of `kind` with its resolved `config` and `model` state dict."""
    assert kind in KINDS, kind
    atomic_save({"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
                 "config": dict(config), "model": model, **payload}, path)


def read_checkpoint(path, kind: str | None = None) -> dict:
    """Load and validate a checkpoint dict; anything else raises UsageError (one line)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UsageError(f"{path}: refused: it is not a plain lstmgan checkpoint "
                         "(loading it would need to run code from the file)") from None
    except Exception:   # the unpickler raises many kinds (IndexError, EOFError, ...) on foreign bytes
        raise UsageError(f"{path}: not a readable checkpoint (corrupt, truncated or another format)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"{path}: not an lstmgan checkpoint")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UsageError(f"{path}: checkpoint format version {version!r} is newer than this "
                         f"lstmgan understands ({FORMAT_VERSION}); upgrade lstmgan")
    if data.get("kind") not in KINDS:
        raise UsageError(f"{path}: unknown checkpoint kind {data.get('kind')!r}")
    if kind is not None and data["kind"] != kind:
        raise UsageError(f"{path}: this is a {data['kind']} checkpoint, but a {kind} checkpoint is needed")
    if not isinstance(data.get("config"), dict):
        raise UsageError(f"{path}: checkpoint has no config")
    if not _is_state_dict(data.get("model")):
        raise UsageError(f"{path}: checkpoint has no model weights")
    return data


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def load_state(module: torch.nn.Module, state: dict, path, what: str = "model") -> None:
    """`load_state_dict` with a clear one-line error when names or shapes disagree."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise UsageError(f"{path}: {what} weights do not match the model "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, tensor in expected.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise UsageError(f"{path}: {what} weight {name} has shape {tuple(state[name].shape)}, "
                             f"the config needs {tuple(tensor.shape)}")
    # fp16 state dicts (the shipped generators) load into the model's own dtype
    module.load_state_dict({name: state[name].to(tensor.dtype) for name, tensor in expected.items()})
