"""Acceptance: the IDX reader validates everything; the lookup finds the data where the docs say; fetch verifies
checksums, leaves no partial file, and downloads nothing when the data is already there."""

import gzip
import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from lstmgan.errors import UsageError
from lstmgan.gan import mnist

from conftest import cli, idx_bytes, snapshot_tree, write_idx_set

OFFICIAL_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
OFFICIAL_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_real_mnist_loads_with_official_counts(mnist_dir):
    train = mnist.load("mnist", "train", mnist_dir)
    test = mnist.load("mnist", "test", mnist_dir)
    assert tuple(train.images.shape) == (60000, 28, 28) and str(train.images.dtype) == "torch.uint8"
    assert tuple(test.images.shape) == (10000, 28, 28)
    assert train.labels.bincount().tolist() == OFFICIAL_TRAIN
    assert test.labels.bincount().tolist() == OFFICIAL_TEST


def test_lookup_uses_env_dir(mnist_dir):
    assert mnist.locate("mnist") == mnist_dir      # conftest sets LSTMGAN_DATA_DIR


# ---- synthetic IDX files

def write_set(folder: Path, n_images=20, n_labels=20, gz=True, images_blob=None, labels_blob=None,
              split="train"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = images_blob if images_blob is not None else idx_bytes(rng.integers(0, 256, (n_images, 28, 28)))
    labels = labels_blob if labels_blob is not None else idx_bytes(rng.integers(0, 10, (n_labels,)))
    names = mnist.SPLITS[split]
    for stem, blob in zip(names, (images, labels)):
        (folder / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(blob, mtime=0) if gz else blob)
    return folder


def test_plain_and_gzip_files_both_read(tmp_path):
    for gz in (True, False):
        data = mnist.read_split(write_set(tmp_path / str(gz), gz=gz), "train")
        assert tuple(data.images.shape) == (20, 28, 28) and len(data.labels) == 20


@pytest.mark.parametrize("case, message", [
    ("wrong magic", "magic number"),
    ("truncated data", "truncated"),
    ("count mismatch", "20 images but 19 labels"),
    ("truncated gzip", "cannot read"),
    ("not idx", "not an IDX file"),
    ("wrong size", "expected 28x28"),
    ("label range", "out of range"),
])
def test_bad_idx_files_give_one_clear_error(tmp_path, case, message):
    rng = np.random.default_rng(1)
    good_images = idx_bytes(rng.integers(0, 256, (20, 28, 28)))
    kwargs = {
        "wrong magic": dict(images_blob=idx_bytes(rng.integers(0, 256, (20, 28, 28)), magic_type=0x0D)),
        "truncated data": dict(images_blob=good_images[:-100]),
        "count mismatch": dict(n_labels=19),
        "truncated gzip": dict(),
        "not idx": dict(labels_blob=b"<html>not found</html>"),
        "wrong size": dict(images_blob=idx_bytes(rng.integers(0, 256, (20, 32, 32)))),
        "label range": dict(labels_blob=idx_bytes(np.full(20, 12))),
    }[case]
    folder = write_set(tmp_path / "d", **kwargs)
    if case == "truncated gzip":
        path = folder / "train-images-idx3-ubyte.gz"
        path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UsageError, match=message) as error:
        mnist.read_split(folder, "train")
    assert "\n" not in str(error.value)
    # and the CLI says it in one line with exit code 2, touching nothing
    for split in ("test",):
        write_set(folder, split=split)
    before = snapshot_tree(folder)
    done = cli("gan", "train", "--data-dir", folder, "--out", tmp_path / "run", "--max-iterations", "1")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert message.split()[0] in done.stderr
    assert snapshot_tree(folder) == before and not (tmp_path / "run").exists()


# ---- download path

class Server:
    """Serves a folder on 127.0.0.1 for the duration of a test."""

    def __init__(self, root: Path):
        handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
        handler.log_message = lambda *a: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mirror(tmp_path, mnist_dir):
    root = tmp_path / "mirror"
    root.mkdir()
    for stem in mnist.FILES:
        (root / f"{stem}.gz").write_bytes((mnist_dir / f"{stem}.gz").read_bytes())
    server = Server(root)
    yield root, server.url
    server.close()


def test_fetch_stores_verified_files(mirror, tmp_path):
    root, url = mirror
    target = tmp_path / "fetched"
    done = cli("data", "fetch", "mnist", "--dir", target, env={"LSTMGAN_MIRRORS": f"http://127.0.0.1:9/ {url}"})
    assert done.returncode == 0, done.stderr
    for stem in mnist.FILES:
        assert mnist.sha256_uncompressed(target / f"{stem}.gz") == mnist.DATASETS["mnist"]["sha256"][stem]
    assert mnist.read_split(target, "test").labels.bincount().tolist() == OFFICIAL_TEST
    assert not list(target.glob(".*part"))


def test_fetch_refuses_a_corrupted_download_and_leaves_nothing(mirror, tmp_path):
    root, url = mirror
    bad = root / "t10k-labels-idx1-ubyte.gz"
    blob = bytearray(gzip.decompress(bad.read_bytes()))
    blob[100] ^= 0xFF                                   # one flipped byte: a valid file, wrong data
    bad.write_bytes(gzip.compress(bytes(blob)))
    target = tmp_path / "fetched"
    done = cli("data", "fetch", "mnist", "--dir", target, env={"LSTMGAN_MIRRORS": url})
    assert done.returncode == 2 and "checksum mismatch" in done.stderr and done.stderr.count("\n") == 1
    assert not (target / "t10k-labels-idx1-ubyte.gz").exists()
    assert not [p for p in target.iterdir() if p.name.startswith(".")]      # no partial file


def test_training_downloads_into_the_cache_when_missing(mirror, tmp_path, monkeypatch):
    _, url = mirror
    monkeypatch.delenv("LSTMGAN_DATA_DIR")
    monkeypatch.chdir(tmp_path)         # no ../shared/data/mnist beside the working directory either
    monkeypatch.setenv("LSTMGAN_MIRRORS", url)
    data = mnist.load("mnist", "test")
    assert len(data) == 10000 and (tmp_path / "cache" / "lstmgan" / "mnist").is_dir()


def test_offline_error_names_the_files_and_the_folder(tmp_path):
    done = cli("gan", "train", "--out", tmp_path / "run", env={"LSTMGAN_DATA_DIR": "", "XDG_CACHE_HOME":
                                                                str(tmp_path / "empty-cache")}, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    for stem in mnist.FILES:
        assert stem in done.stderr
    assert str(tmp_path / "empty-cache" / "lstmgan" / "mnist") in done.stderr
    assert not (tmp_path / "run").exists()


def test_checksums_table_matches_the_shared_files(mnist_dir):
    for stem in mnist.FILES:
        digest = hashlib.sha256(gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes())).hexdigest()
        assert digest == mnist.DATASETS["mnist"]["sha256"][stem]


# ---- where the data is found, and `lstmgan data fetch` when it already is

def write_mnist_like(folder: Path) -> Path:
    """Both splits of synthetic MNIST-format files: enough for the lookup, which wants all four."""
    write_idx_set(folder, n=16, split="train")
    return write_idx_set(folder, n=16, split="test")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A clone with nothing beside it, run from inside it, with no $LSTMGAN_DATA_DIR and an empty cache."""
    clone = tmp_path / "workspace" / "clone"
    clone.mkdir(parents=True)
    monkeypatch.chdir(clone)
    monkeypatch.delenv("LSTMGAN_DATA_DIR", raising=False)   # unset already without MNIST
    return clone


def test_lookup_finds_the_env_dir_first(workspace, tmp_path, monkeypatch):
    env_dir = write_mnist_like(tmp_path / "elsewhere" / "mnist")
    write_mnist_like(tmp_path / "cache" / "lstmgan" / "mnist")
    monkeypatch.setenv("LSTMGAN_DATA_DIR", str(env_dir.parent))       # DIR/mnist counts as DIR
    assert mnist.locate("mnist", download=False) == env_dir


def test_lookup_finds_the_cache_before_the_shared_sibling(workspace, tmp_path):
    cached = write_mnist_like(tmp_path / "cache" / "lstmgan" / "mnist")      # conftest's XDG_CACHE_HOME
    write_mnist_like(workspace.parent / "shared" / "data" / "mnist")
    assert mnist.locate("mnist", download=False) == cached


def test_lookup_finds_the_shared_sibling_of_the_working_directory(workspace):
    sibling = write_mnist_like(workspace.parent / "shared" / "data" / "mnist")
    assert mnist.locate("mnist", download=False) == sibling and sibling.is_absolute()
    assert len(mnist.load("mnist", "test")) == 16


def test_data_dir_stays_strict_when_the_sibling_has_the_data(workspace, tmp_path):
    write_mnist_like(workspace.parent / "shared" / "data" / "mnist")
    with pytest.raises(UsageError, match="files not found there"):
        mnist.locate("mnist", data_dir=tmp_path / "empty")


def test_fetch_downloads_nothing_when_the_lookup_finds_the_data(tmp_path):
    found = write_mnist_like(tmp_path / "data")
    before = snapshot_tree(tmp_path)
    done = cli("data", "fetch", "mnist", env={"LSTMGAN_DATA_DIR": str(found)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"mnist is already in {found}; nothing downloaded "
                                        f"(--dir DIR downloads a copy there)"]
    assert snapshot_tree(tmp_path) == before and not (tmp_path / "cache").exists()


def test_fetch_without_data_or_network_says_how_in_one_line(tmp_path):
    # conftest points LSTMGAN_MIRRORS at a closed port; no data in $LSTMGAN_DATA_DIR, the cache or beside cwd
    done = cli("data", "fetch", "mnist", env={"LSTMGAN_DATA_DIR": ""}, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "download failed" in done.stderr and "LSTMGAN_DATA_DIR" in done.stderr
    assert str(tmp_path / "cache" / "lstmgan" / "mnist") in done.stderr
