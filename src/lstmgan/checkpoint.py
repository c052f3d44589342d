"""The file formats of both parts: written atomically, read without running code.

* A training checkpoint (`last.pt`, snapshots) is one `torch.save` dict::

      {"format": "lstmgan-checkpoint", "format_version": 1, "kind": "palindrome" | "gan",
       "config": {...}, "model": state_dict, ... optimizer states, progress, RNG states ...}

  read with `torch.load(weights_only=True)`, so a file that would need to unpickle arbitrary
  objects (a `__reduce__` payload, say) is refused before any of it runs. That promise holds
  on torch >= 2.10 only (older `weights_only` loaders have advisories), so an older torch
  refuses .pt files altogether.
* Weights that travel (exports, the shipped models) are `.safetensors`: the model's tensors,
  and as JSON strings in the header's metadata the format, kind, config and metrics. No
  pickle at all: reading one runs no code on any torch.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch
from torch.torch_version import TorchVersion

from .errors import UsageError

FORMAT = "lstmgan-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FORMAT = "lstmgan-weights"
KINDS = ("palindrome", "gan")
SAFE_TORCH = "2.10"          # the first torch whose weights_only loader has no open advisory
ADVISORIES = "CVE-2025-32434 (fixed in torch 2.6) and CVE-2026-24747 (fixed in 2.10)"
MAX_HEADER = 16 * 1024 * 1024   # a safetensors header beyond this is not one of ours


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


def torch_loads_safely() -> bool:
    return TorchVersion(torch.__version__) >= SAFE_TORCH


def read_checkpoint(path, kind: str | None = None) -> dict:
    """Load and validate a checkpoint dict (.pt or .safetensors); anything else raises UsageError (one line)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return read_weights(path, kind)
    if not torch_loads_safely():
        raise UsageError(f"{path}: refused: torch {torch.__version__} cannot load .pt files safely ({ADVISORIES}); "
                         f"upgrade to torch>={SAFE_TORCH}, or use a .safetensors export")
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
    return check_contents(path, data, kind)


def check_contents(path: Path, data: dict, kind: str | None) -> dict:
    """The checks both formats share: kind, config and weights."""
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
    check_state(module, state, path, what)
    # fp16 state dicts (the shipped generators) load into the model's own dtype
    module.load_state_dict({name: state[name].to(tensor.dtype) for name, tensor in module.state_dict().items()})


def check_state(module: torch.nn.Module, state, path, what: str = "model") -> None:
    """UsageError (one line) unless `state` has exactly the names, shapes and kinds of `module`'s state dict."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{path}: holds no {what} weights")
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
        if state[name].is_floating_point() != tensor.is_floating_point():
            raise UsageError(f"{path}: {what} weight {name} has dtype {state[name].dtype}, "
                             f"the model needs {tensor.dtype}")


# ------------------------------------------------------------------ safetensors

def write_safetensors(path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Tensors and string metadata as a .safetensors file, written atomically."""
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    atomic_write(path, lambda f: f.write(data))


def read_safetensors(path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a .safetensors file; a malformed one raises UsageError (one line)."""
    from safetensors.torch import load

    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise UsageError(f"{path}: not a readable .safetensors file (truncated: {len(data)} bytes)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER:
        raise UsageError(f"{path}: not a readable .safetensors file (header of {size} bytes is oversized)")
    if 8 + size > len(data):
        raise UsageError(f"{path}: not a readable .safetensors file (truncated header)")
    try:
        header = json.loads(data[8:8 + size])
        tensors = load(data)
    except Exception as error:   # the parser raises its own error types on garbled bytes
        reason = " ".join(str(error).split())[:120] or type(error).__name__
        raise UsageError(f"{path}: not a readable .safetensors file ({reason})") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return tensors, metadata if isinstance(metadata, dict) else {}


def save_weights(path, kind: str, config: dict, model: dict[str, torch.Tensor], **extra) -> None:
    """A model to share: its weights, with the format, kind, config and `extra` (metrics, ...) as JSON."""
    assert kind in KINDS, kind
    metadata = {"format": WEIGHTS_FORMAT, "format_version": str(FORMAT_VERSION), "kind": kind,
                "config": json.dumps(config), **{k: json.dumps(v) for k, v in extra.items()}}
    write_safetensors(path, model, metadata)


def read_weights(path: Path, kind: str | None = None) -> dict:
    """A .safetensors model, as the same dict a checkpoint gives: {"kind", "config", "model", ...}."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != WEIGHTS_FORMAT:
        raise UsageError(f"{path}: not an lstmgan weights file (its metadata does not say format {WEIGHTS_FORMAT})")
    try:
        version = int(metadata.get("format_version", ""))
        extra = {k: json.loads(v) for k, v in metadata.items() if k not in ("format", "format_version", "kind")}
    except ValueError:
        raise UsageError(f"{path}: its metadata is not lstmgan's JSON") from None
    if version > FORMAT_VERSION:
        raise UsageError(f"{path}: weights format version {version} is newer than this lstmgan understands "
                         f"({FORMAT_VERSION}); upgrade lstmgan")
    return check_contents(path, {"format": WEIGHTS_FORMAT, "format_version": version, "kind": metadata.get("kind"),
                                 **extra, "model": tensors}, kind)
