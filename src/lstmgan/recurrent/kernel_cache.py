"""Where the compiled kernel's library lives, and how it is built once, safely.

* **One folder per binary.** `<root>/lstmgan_recurrences-<key>/`, where `<key>` hashes what decides the
  binary: the source, torch's version and C++ ABI, Python's version, the machine and the compiler flags
  (the CPU capability among them). Paths are not in it, so two environments with the same torch share one
  build. `<root>` is `$TORCH_EXTENSIONS_DIR`, else torch's default (`~/.cache/torch_extensions`).
* **Never a half-written library.** It is compiled in a private `build-<pid>` folder, copied in under a
  temporary name and renamed into place; `manifest.json` (its sha256, the build's seconds) is written
  last. A library whose manifest is missing or does not match it is rebuilt, never loaded.
* **No stale lock.** Builders take an `flock` on `build.lock`. The operating system drops it when its holder
  dies, however it dies, so a killed build blocks nothing; the next builder clears what it left. A process
  that finds the lock held says once whose build it waits for, and gives up after
  `$LSTMGAN_KERNEL_WAIT` seconds (default 300) with a one-line reason.
* **Read-only caches work.** A valid library is loaded without taking any lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

MANIFEST = "manifest.json"
LOCK = "build.lock"
DEFAULT_WAIT_S = 300.0

# Run in a child process so that the build (and torch's own lock in its private folder) dies with it,
# and so that this process loads only the installed copy. cpp_extension is torch's public build API.
_COMPILE = """\
import json, sys
from torch.utils import cpp_extension
name, source, cflags, ldflags, folder, verbose = sys.argv[1:]
cpp_extension.load(name, [source], extra_cflags=json.loads(cflags), extra_ldflags=json.loads(ldflags),
                   build_directory=folder, is_python_module=False, verbose=verbose == "1")
"""


class BuildFailed(RuntimeError):
    """The compiler failed, the cache cannot be written, or the wait for another build ran out."""


@dataclass(frozen=True)
class Kernel:
    library: Path
    built_now: bool         # False: an earlier build was reused
    build_seconds: float    # wall seconds the build took (now, or when it was built)


@dataclass(frozen=True)
class Recipe:
    """What to compile, and with what: everything that decides the binary."""
    name: str
    source: Path
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]

    def identity(self) -> dict:
        return {"name": self.name, "source_sha256": hashlib.sha256(self.source.read_bytes()).hexdigest(),
                "torch": torch.__version__, "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
                "python": f"{sys.version_info.major}.{sys.version_info.minor}", "machine": platform.machine(),
                "cflags": list(self.cflags), "ldflags": list(self.ldflags)}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]

    def library_name(self) -> str:
        return f"{self.name}.so"


def cache_root() -> Path:
    from torch.utils import cpp_extension

    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root())


def folder_of(recipe: Recipe, root: Path | None = None) -> Path:
    return (root or cache_root()) / f"{recipe.name}-{recipe.key()}"


def wait_bound() -> float:
    text = os.environ.get("LSTMGAN_KERNEL_WAIT", "")
    try:
        return float(text) if text else DEFAULT_WAIT_S
    except ValueError:
        raise BuildFailed(f"LSTMGAN_KERNEL_WAIT must be a number of seconds (got {text!r})") from None


def installed(recipe: Recipe, folder: Path) -> Kernel | None:
    """The library in `folder` if its manifest vouches for it (same recipe, same bytes), else None."""
    library = folder / recipe.library_name()
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest["key"] == recipe.key() and manifest["sha256"] == _sha256(library):
            return Kernel(library, built_now=False, build_seconds=float(manifest["build_seconds"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def ensure(recipe: Recipe, root: Path | None = None, verbose: bool = False, say=None) -> Kernel:
    """The recipe's library: reused when a valid one exists, else built (or awaited) under the lock."""
    say = say or _say
    folder = folder_of(recipe, root)
    found = installed(recipe, folder)
    if found:
        return found
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with build_lock(folder / LOCK, wait_bound(), say):
            found = installed(recipe, folder)          # the build we waited for
            if found:
                return found
            clear_leftovers(recipe, folder, say)
            say(f"building the compiled LSTM/RNN kernel (once per torch version and flags; into {folder})")
            seconds = compile_into(recipe, folder, verbose)
    except OSError as error:
        raise BuildFailed(f"cannot write the kernel cache {folder} ({error.strerror}); "
                          "set TORCH_EXTENSIONS_DIR to a writable folder") from None
    return Kernel(folder / recipe.library_name(), built_now=True, build_seconds=seconds)


@contextmanager
def build_lock(path: Path, wait_s: float, say):
    """Hold an exclusive flock on `path`; the OS releases it when this process ends, however it ends."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:          # another user's lock file: flock needs no write access
        fd = os.open(path, os.O_RDONLY)
    try:
        deadline, told = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    time.sleep(0.2)      # the holder writes who it is just after taking the lock
                    say(f"waiting for the kernel build of {holder_of(path)} (at most {wait_s:g} s; "
                        "LSTMGAN_KERNEL_WAIT sets it)")
                    told = True
                if time.monotonic() >= deadline:
                    raise BuildFailed(f"gave up after {wait_s:g} s waiting for the kernel build of "
                                      f"{holder_of(path)} (lock {path}; LSTMGAN_KERNEL_WAIT waits longer)")
                time.sleep(0.25)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {stamp}".encode())
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


def holder_of(lock: Path) -> str:
    try:
        return lock.read_text().strip() or "another process"
    except OSError:
        return "another process"


def clear_leftovers(recipe: Recipe, folder: Path, say) -> None:
    """Remove what builds that died left behind. Called under the lock, so none of it is in use."""
    left = sorted(folder.glob("build-*")) + sorted(folder.glob(f"{recipe.library_name()}.tmp-*"))
    if left:
        pids = sorted({p.name.rsplit("-", 1)[-1] for p in left})
        say(f"removing an unfinished kernel build (pid {', '.join(pids)}: it stopped before it finished)")
    elif (folder / recipe.library_name()).exists():
        say(f"the kernel library in {folder} is incomplete or does not match its manifest; rebuilding it")
    for path in left:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)


def compile_into(recipe: Recipe, folder: Path, verbose: bool) -> float:
    """Compile in a private folder, then install library and manifest by rename; returns the seconds."""
    work = folder / f"build-{os.getpid()}"
    work.mkdir()
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _COMPILE, recipe.name, str(recipe.source),
                           json.dumps(list(recipe.cflags)), json.dumps(list(recipe.ldflags)), str(work),
                           "1" if verbose else "0"],
                          stdout=None if verbose else subprocess.PIPE, stderr=None if verbose else subprocess.STDOUT,
                          text=True)
    if done.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise BuildFailed(failure_reason(done.stdout or f"the compiler exited with {done.returncode}"))
    seconds = time.monotonic() - start
    library = folder / recipe.library_name()
    _install(work / recipe.library_name(), library)
    manifest = {"key": recipe.key(), "identity": recipe.identity(), "sha256": _sha256(library),
                "build_seconds": round(seconds, 2),
                "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "built_by": f"pid {os.getpid()} on {socket.gethostname()} ({sys.executable})"}
    tmp = folder / f"{MANIFEST}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, folder / MANIFEST)
    shutil.rmtree(work, ignore_errors=True)
    return seconds


def failure_reason(text: str) -> str:
    """One short line from a build failure: the compiler's first error if it printed one."""
    errors = [line.strip() for line in text.splitlines() if "error:" in line]
    reason = " ".join((errors[0] if errors else text).split())
    return reason[:300] + ("…" if len(reason) > 300 else "")


def _install(source: Path, target: Path) -> None:
    """Copy under a temporary name, flush, rename: `target` is absent, old or complete, never partial."""
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.copy2(source, tmp)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _say(message: str) -> None:
    print(f"lstmgan: {message}", file=sys.stderr, flush=True)
