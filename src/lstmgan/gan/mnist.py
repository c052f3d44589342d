"""MNIST-like data sets (MNIST, Fashion-MNIST) from the four standard IDX files.

The reader validates everything it reads (gzip stream, magic number, dimensions, record
counts, images vs labels) and loads a whole split as one uint8 tensor.

Where the files are looked for, in order (only the files of the split asked for are needed):

1. `--data-dir DIR`, if given, and nowhere else: an explicit folder must hold the data;
2. `$LSTMGAN_DATA_DIR` (like DIR, as the folder itself, DIR/NAME, or torchvision's DIR/MNIST/raw);
3. the user cache, `$XDG_CACHE_HOME/lstmgan/NAME` (default `~/.cache/lstmgan/NAME`);
4. system folders (for Fashion-MNIST, Debian's `/usr/share/datasets/fashion-mnist`);
5. `../shared/data/NAME` relative to the current working directory, where that folder exists:
   a workspace that keeps one read-only copy of the data beside several clones.

When none holds them, the missing files are downloaded from public mirrors into the cache
and verified by the SHA-256 of their uncompressed bytes (mirrors recompress, the data
stays the same).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError
from ..seeding import random_stream

NUM_CLASSES = 10        # digits in MNIST, garment kinds in Fashion-MNIST
TRAIN_SIZE = 60000      # images in the training file of either data set
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FILES = [name for pair in SPLITS.values() for name in pair]

DATASETS = {
    "mnist": {
        "title": "MNIST",
        "mirrors": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/",
                    "http://yann.lecun.com/exdb/mnist/"],
        "sha256": {  # of the uncompressed files
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        "system_dirs": [],
        "torchvision": "MNIST",
    },
    "fashion-mnist": {
        "title": "Fashion-MNIST",
        "mirrors": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"],
        "sha256": {
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        "system_dirs": ["/usr/share/datasets/fashion-mnist"],
        "torchvision": "FashionMNIST",
    },
}
IDX_UBYTE = 0x08


def _dataset(name: str) -> dict:
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; choose " + " or ".join(DATASETS))
    return DATASETS[name]


# ---------------------------------------------------------------- reading

def read_idx(path: Path, ndim: int) -> np.ndarray:
    """One IDX file of unsigned bytes (gzip or plain) -> array with its declared shape."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        reason = "truncated gzip data" if isinstance(error, EOFError) else str(error) or type(error).__name__
        raise UsageError(f"{path}: cannot read ({reason})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UsageError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    if raw[2] != IDX_UBYTE or raw[3] != ndim:
        raise UsageError(f"{path}: wrong IDX magic number 0x{raw[:4].hex()} "
                         f"(expected 0x0000{IDX_UBYTE:02x}{ndim:02x}: unsigned bytes, {ndim} dimension(s))")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UsageError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        what = "truncated" if len(raw) - header < expected else "has trailing bytes"
        raise UsageError(f"{path}: {what}: header declares {shape} = {expected} bytes of data, "
                         f"found {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


@dataclass
class ImageSet:
    """A whole split in memory: images uint8 [N, 28, 28], labels int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    split: str

    def __len__(self) -> int:
        return len(self.labels)


def read_split(directory: Path, split: str, name: str = "mnist") -> ImageSet:
    images_name, labels_name = SPLITS[split]
    images_path, labels_path = _existing(directory, images_name), _existing(directory, labels_name)
    if images_path is None or labels_path is None:
        missing = [n for n, p in ((images_name, images_path), (labels_name, labels_path)) if p is None]
        raise UsageError(f"{directory}: missing {', '.join(missing)}[.gz]")
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[1:] != (28, 28):
        raise UsageError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if len(images) != len(labels):
        raise UsageError(f"{directory}: {len(images)} images but {len(labels)} labels in the {split} split")
    if len(labels) and labels.max() >= NUM_CLASSES:
        raise UsageError(f"{labels_path}: label {int(labels.max())} out of range 0..{NUM_CLASSES - 1}")
    return ImageSet(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)), name, split)


def _existing(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------- finding

def cache_dir(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lstmgan" / name


def _complete(directory: Path, splits=tuple(SPLITS)) -> bool:
    return all(_existing(directory, stem) is not None for split in splits for stem in SPLITS[split])


def layouts(root: Path, name: str) -> list[Path]:
    """Folders under `root` that may hold the files: root itself, root/NAME, and torchvision's ROOT/MNIST/raw."""
    return [root, root / name, root / _dataset(name)["torchvision"] / "raw"]


def candidate_dirs(name: str, data_dir=None) -> list[Path]:
    """Where a data set is looked for, in order."""
    found = []
    if data_dir:
        found += layouts(Path(data_dir), name)
    env = os.environ.get("LSTMGAN_DATA_DIR")
    if env:
        found += layouts(Path(env), name)
    found.append(cache_dir(name))
    found += [Path(p) for p in _dataset(name)["system_dirs"]]
    sibling = shared_sibling_dir(name)
    if sibling is not None and sibling.is_dir():
        found.append(sibling)
    return found


def shared_sibling_dir(name: str) -> Path | None:
    """`../shared/data/NAME` from the working directory: last in the lookup, so a user's own copy wins.

    None when the working directory itself is gone (a deleted folder has no siblings to look at)."""
    try:
        return Path.cwd().parent / "shared" / "data" / name
    except FileNotFoundError:
        return None


def locate(name: str = "mnist", data_dir=None, download: bool = True, splits=tuple(SPLITS)) -> Path:
    """The folder holding the files of `splits` (default: all four), downloading into the cache if needed."""
    spec = _dataset(name)
    needed = [stem for split in splits for stem in SPLITS[split]]
    if data_dir:   # an explicit folder must hold the data: no silent fallback elsewhere
        for directory in layouts(Path(data_dir), name):
            if _complete(directory, splits):
                return directory
        raise UsageError(f"--data-dir {data_dir}: {spec['title']} files not found there "
                         f"(need {', '.join(f + '.gz' for f in needed)})")
    for directory in candidate_dirs(name):
        if _complete(directory, splits):
            return directory
    if not download:
        raise UsageError(missing_message(name, cache_dir(name), "not downloaded", needed))
    return fetch(name, cache_dir(name), splits=splits)


def load(name: str = "mnist", split: str = "train", data_dir=None) -> ImageSet:
    return read_split(locate(name, data_dir, splits=(split,)), split, name)


VAL_SPLITS = ("stratified", "tail")
VAL_SPLIT_STREAM = 0x7A15   # the random stream of the stratified draw (beside seeding.Stream's)


def split_off_validation(data: ImageSet, val_size: int, how: str = "tail",
                         seed: int = 0) -> tuple[ImageSet, ImageSet | None]:
    """(training part, validation part): `val_size` training images held out for model selection.

    `how`: "stratified", a seeded random draw holding each class at its share of the file
    (what new runs use); or "tail", the file's last `val_size` images (runs from before the
    option; not a fair sample: MNIST's training file is ordered by writer, and its tail scores
    FID 2.65 against the test set where a random draw of real images scores 1.5-2.0).
    Both parts keep the file's order. `val_size` 0: no split.
    """
    if not 0 <= val_size < len(data):
        raise UsageError(f"--val-size must be in 0..{len(data) - 1} for the {len(data)} training images "
                         f"(got {val_size})")
    if how not in VAL_SPLITS:
        raise UsageError(f"--val-split must be {' or '.join(VAL_SPLITS)} (got {how!r})")
    if val_size == 0:
        return data, None
    held_out = torch.zeros(len(data), dtype=torch.bool)
    if how == "tail":
        held_out[len(data) - val_size:] = True
    else:
        held_out[stratified_validation_index(data.labels, val_size, seed)] = True
    return (ImageSet(data.images[~held_out], data.labels[~held_out], data.name, "train"),
            ImageSet(data.images[held_out], data.labels[held_out], data.name, "val"))


def class_counts(shares: torch.Tensor, n: int) -> torch.Tensor:
    """n split among classes in proportion to `shares` (largest remainder): the counts sum to n exactly."""
    exact = shares.double() / shares.double().sum() * n
    counts = exact.floor().long()
    short = n - int(counts.sum())
    counts[torch.argsort(exact - counts, descending=True, stable=True)[:short]] += 1
    return counts


def stratified_validation_index(labels: torch.Tensor, val_size: int, seed: int) -> torch.Tensor:
    """Sorted indices of `val_size` images, each class drawn at random at its share of `labels`."""
    counts = class_counts(torch.bincount(labels, minlength=NUM_CLASSES), val_size)
    rng = random_stream(seed, VAL_SPLIT_STREAM)
    chosen = []
    for digit, count in enumerate(counts.tolist()):
        members = (labels == digit).nonzero().squeeze(1)
        chosen.append(members[torch.randperm(len(members), generator=rng)[:count]])
    return torch.cat(chosen).sort().values


def missing_message(name: str, target: Path, reason: str, needed=FILES) -> str:
    return (f"{_dataset(name)['title']} is not available ({reason}). Put the files "
            f"{', '.join(f + '.gz' for f in needed)} in {target}, or pass --data-dir DIR, "
            f"or set LSTMGAN_DATA_DIR")


# ---------------------------------------------------------------- downloading

def mirrors(name: str) -> list[str]:
    """Base URLs to try; `$LSTMGAN_MIRRORS` (space or comma separated) replaces the built-in list."""
    override = os.environ.get("LSTMGAN_MIRRORS")
    urls = override.replace(",", " ").split() if override else _dataset(name)["mirrors"]
    return [u if u.endswith("/") else u + "/" for u in urls]


def sha256_uncompressed(path: Path) -> str:
    digest = hashlib.sha256()
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name: str = "mnist", directory=None, timeout: float = 30.0, quiet: bool = True,
          splits=tuple(SPLITS)) -> Path:
    """Download any file of `splits` missing from `directory` (default: the cache), verified."""
    spec = _dataset(name)
    directory = Path(directory) if directory else cache_dir(name)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create {directory}: {error.strerror}") from None
    for stem in [stem for split in splits for stem in SPLITS[split]]:
        if _existing(directory, stem) is not None:
            continue
        errors = []
        for base in mirrors(name):
            url = f"{base}{stem}.gz"
            try:
                _download_verified(url, directory / f"{stem}.gz", spec["sha256"][stem], timeout)
                if not quiet:
                    print(f"fetched {url}")
                break
            except (urllib.error.URLError, OSError, ValueError, EOFError, zlib.error) as error:
                errors.append(f"{url}: {getattr(error, 'reason', None) or error}")
        else:
            raise UsageError(missing_message(name, directory, "download failed: " + "; ".join(errors[-2:])))
    return directory


def _download_verified(url: str, target: Path, sha256: str, timeout: float) -> None:
    """Stream `url` to a temp file beside `target`; keep it only if its data's checksum matches."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, f)
        got = sha256_uncompressed(tmp)
        if got != sha256:
            raise ValueError(f"checksum mismatch (sha256 {got[:12]}…, expected {sha256[:12]}…)")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
