import functools
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

# One thread keeps CPU results reproducible and leaves room for anything running beside the tests.
torch.set_num_threads(1)
# The compiled kernel is built once into torch's usual cache (scripts/setup does it ahead of the tests),
# not into each test's private cache folder.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", torch.utils.cpp_extension.get_default_build_root())


@functools.cache
def real_mnist() -> Path | None:
    """Real MNIST where the package itself finds it ($LSTMGAN_DATA_DIR, the user's cache, ../shared/data/mnist
    beside the working directory), or None. Resolved once, from the user's own environment: the first call comes
    from pytest_configure, before any test's fixture has changed XDG_CACHE_HOME or LSTMGAN_DATA_DIR."""
    from lstmgan.errors import UsageError
    from lstmgan.gan.mnist import locate

    try:
        return locate("mnist", download=False).resolve()
    except UsageError:
        return None


def how_to_provide_mnist() -> str:
    from lstmgan.gan.mnist import cache_dir

    return (f"MNIST not found: tests that need it are skipped. Provide it with `lstmgan data fetch mnist` "
            f"(or put the four IDX .gz files in {cache_dir('mnist')}, or set LSTMGAN_DATA_DIR=DIR)")


def pytest_configure(config):
    real_mnist()


def pytest_report_header(config):
    found = real_mnist()
    return f"mnist: {found}" if found else None


def pytest_terminal_summary(terminalreporter):
    # the summary, unlike the header, shows under the project's default -q
    if real_mnist() is None:
        terminalreporter.write_line(how_to_provide_mnist())


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    found = real_mnist()
    if found is None:
        pytest.skip(how_to_provide_mnist())
    return found


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's cache; MNIST comes from where the session found it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if real_mnist() is None:
        monkeypatch.delenv("LSTMGAN_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("LSTMGAN_DATA_DIR", str(real_mnist()))
    monkeypatch.setenv("LSTMGAN_MIRRORS", "http://127.0.0.1:9/")   # never the internet


def cli(*args, env=None, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m lstmgan ARGS` with one torch thread; returns the completed process."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "lstmgan", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, **kwargs)


def benchmark_script(name: str):
    """A script of benchmarks/ (not a package) loaded as a module, to test the rules it carries out."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
