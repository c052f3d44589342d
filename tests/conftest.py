import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.utils.cpp_extension

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = (ROOT / ".." / "shared" / "data" / "mnist").resolve()

# One thread keeps CPU results reproducible and leaves room for anything running beside the tests.
torch.set_num_threads(1)
# The compiled kernel is built once into torch's usual cache (scripts/setup does it ahead of the tests),
# not into each test's private cache folder.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", torch.utils.cpp_extension.get_default_build_root())


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"real MNIST is expected at {MNIST_DIR}")
    return MNIST_DIR


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's cache; MNIST comes from the shared folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("LSTMGAN_DATA_DIR", str(MNIST_DIR))
    monkeypatch.setenv("LSTMGAN_MIRRORS", "http://127.0.0.1:9/")   # never the internet


def cli(*args, env=None, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m lstmgan ARGS` with one torch thread; returns the completed process."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "lstmgan", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, **kwargs)


def snapshot_tree(root: Path) -> dict:
    """{relative path: bytes} of every file under root, to show a command changed nothing."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def idx_bytes(array: np.ndarray, magic_type: int = 0x08) -> bytes:
    """An IDX file's bytes: zero, zero, type, ndim, big-endian dimensions, then the data."""
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, n: int = 256, split: str = "train", seed: int = 0) -> Path:
    """A small MNIST-format split of random images and labels (for mechanics, not learning)."""
    from lstmgan.gan.mnist import SPLITS

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images_name, labels_name = SPLITS[split]
    (folder / f"{images_name}.gz").write_bytes(gzip.compress(idx_bytes(rng.integers(0, 256, (n, 28, 28))), mtime=0))
    (folder / f"{labels_name}.gz").write_bytes(gzip.compress(idx_bytes(rng.integers(0, 10, (n,))), mtime=0))
    return folder
