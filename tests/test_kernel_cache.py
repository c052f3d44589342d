"""Acceptance (issue 49): the compiled kernel's cache never hangs, never loads a partial library, and one build
serves every environment with the same torch. Each test uses a private TORCH_EXTENSIONS_DIR."""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import torch

from lstmgan.recurrent import backends, kernel_cache

from conftest import cli

TINY_TRAIN = ("palindrome", "train", "--input-length", "4", "--data-size", "300", "--max-epoch", "1",
              "--num-hidden", "8", "--quiet")


def private(root: Path, **more) -> dict:
    # CI sets LSTMGAN_REQUIRE_KERNEL; the fallback tests clear it themselves
    return {"TORCH_EXTENSIONS_DIR": str(root), **more}


def kernel_folder(root: Path) -> Path:
    return kernel_cache.folder_of(backends.kernel_recipe(), root)


def build_command(python=sys.executable):
    return [str(python), "-m", "lstmgan", "build-kernels"]


@pytest.fixture(scope="module")
def raced_build(tmp_path_factory):
    """Two `lstmgan build-kernels` started at the same moment on an empty cache; their outputs and the cache."""
    root = tmp_path_factory.mktemp("extensions")
    env = {**os.environ, **private(root), "OMP_NUM_THREADS": "1"}
    racers = [subprocess.Popen(build_command(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    outputs = [(p.wait(timeout=300), *p.communicate()) for p in racers]
    return root, outputs


def test_two_builds_at_once_one_builds_the_other_waits_and_loads_the_same_library(raced_build):
    root, outputs = raced_build
    assert [code for code, _, _ in outputs] == [0, 0], outputs
    built = [out for _, out, _ in outputs if "built now" in out]
    reused = [(out, err) for _, out, err in outputs if "reused" in out]
    assert len(built) == 1 and len(reused) == 1, outputs
    out, err = reused[0]
    assert "waiting for the kernel build of pid" in err and "building" not in err
    libraries = {line.split("ready: ")[1].split(" (")[0] for _, out, _ in outputs for line in out.splitlines()}
    assert libraries == {str(kernel_folder(root) / "lstmgan_recurrences.so")}
    assert not list(kernel_folder(root).glob("build-*"))           # the private build folder is gone


def test_a_second_environment_with_the_same_torch_reuses_the_build(raced_build, tmp_path):
    """Environment B: its own sys.prefix and its own path to torch (so its include paths differ from A's)."""
    root, _ = raced_build
    env_b = tmp_path / "env-b"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_b)], check=True)
    python_b = env_b / "bin" / "python"
    site_b = Path(subprocess.run([python_b, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip())
    (site_b / "torch").symlink_to(Path(torch.__file__).parent, target_is_directory=True)
    (site_b / "zz_environment_a.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")   # everything else from A
    env = {**os.environ, **private(root)}
    where = subprocess.run([python_b, "-c", "import sys, torch; print(sys.prefix); print(torch.__file__)"],
                           capture_output=True, text=True, env=env, check=True).stdout.split()
    assert where == [str(env_b), str(site_b / "torch" / "__init__.py")]
    done = subprocess.run(build_command(python_b), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "reused" in done.stdout and "building" not in done.stderr
    assert str(kernel_folder(root)) in done.stdout


def test_a_build_killed_midway_leaves_nothing_that_blocks_the_next_run(tmp_path):
    root = tmp_path / "extensions"
    env = {**os.environ, **private(root), "OMP_NUM_THREADS": "1"}
    # its own session, so that the compiler it left running can be cleaned up after the test
    build = subprocess.Popen(build_command(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not list(kernel_folder(root).glob("build-*/build.ninja")) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)                                   # the compiler is at work
        assert build.poll() is None and not (kernel_folder(root) / "manifest.json").exists()
        os.kill(build.pid, signal.SIGKILL)              # only the build's own process, as the OOM killer does
        build.wait()
        start = time.monotonic()
        done = cli(*TINY_TRAIN, "--out", tmp_path / "run", env=private(root), timeout=120)
        took = time.monotonic() - start
    finally:
        try:
            os.killpg(build.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert done.returncode == 0, done.stderr
    assert took < 120 and "backend compiled" in done.stdout
    about_it = [line for line in done.stderr.splitlines() if "unfinished" in line or "stale" in line]
    assert len(about_it) <= 1, done.stderr
    assert (kernel_folder(root) / "manifest.json").exists()


def test_a_wait_past_its_bound_falls_back_to_the_eager_backend_with_the_same_numbers(tmp_path):
    root = tmp_path / "extensions"
    folder = kernel_folder(root)
    folder.mkdir(parents=True)
    with open(folder / "build.lock", "w") as lock:           # a build that never ends, held by this process
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write(f"pid {os.getpid()} on test-host, started now")
        lock.flush()
        start = time.monotonic()
        waited = cli(*TINY_TRAIN, "--out", tmp_path / "auto",
                     env=private(root, LSTMGAN_KERNEL_WAIT="2", LSTMGAN_REQUIRE_KERNEL=""), timeout=120)
        took = time.monotonic() - start
    eager = cli(*TINY_TRAIN, "--backend", "eager", "--out", tmp_path / "eager", env=private(root))
    assert waited.returncode == 0 and eager.returncode == 0, waited.stderr + eager.stderr
    assert took < 60
    lines = [line for line in waited.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, waited.stderr      # one line while it waits, one when it gives up
    assert lines[0].startswith("lstmgan: waiting for the kernel build of pid")
    assert "gave up after 2 s" in lines[1] and "eager" in lines[1]
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["resolved_backend"] == "eager"
    assert (tmp_path / "auto" / "metrics.csv").read_text() == (tmp_path / "eager" / "metrics.csv").read_text()


def fake_compiler(library: Path, mark: Path) -> str:
    """A stand-in for the compiler child: it 'builds' by copying a known-good library, and touches `mark`."""
    return ("import shutil, sys, pathlib\n"
            f"shutil.copy({str(library)!r}, pathlib.Path(sys.argv[5]) / 'lstmgan_recurrences.so')\n"
            f"pathlib.Path({str(mark)!r}).touch()\n")


@pytest.mark.parametrize("damage", ["truncated", "no manifest", "wrong bytes"])
def test_a_damaged_library_is_rebuilt_not_loaded(tmp_path, monkeypatch, damage):
    good = backends.build_kernel()                 # the suite's own build (scripts/setup made it)
    recipe = backends.kernel_recipe()
    folder = kernel_cache.folder_of(recipe, tmp_path)
    folder.mkdir()
    shutil.copy(good, folder / good.name)
    shutil.copy(good.parent / "manifest.json", folder / "manifest.json")
    assert kernel_cache.installed(recipe, folder) is not None
    library = folder / good.name
    if damage == "truncated":
        library.write_bytes(library.read_bytes()[: library.stat().st_size // 2])
    elif damage == "no manifest":
        (folder / "manifest.json").unlink()
    else:
        library.write_bytes(b"\x7fELF" + bytes(1000))
    assert kernel_cache.installed(recipe, folder) is None
    monkeypatch.setattr(kernel_cache, "_COMPILE", fake_compiler(good, tmp_path / "compiled"))
    said = []
    found = kernel_cache.ensure(recipe, root=tmp_path, say=said.append)
    assert found.built_now and (tmp_path / "compiled").exists()
    assert found.library.read_bytes() == good.read_bytes()
    assert kernel_cache.installed(recipe, folder) is not None
    assert any("does not match its manifest; rebuilding" in line for line in said), said


def test_the_cache_folder_is_keyed_by_what_decides_the_binary(monkeypatch):
    recipe = backends.kernel_recipe()
    key = recipe.key()
    assert backends.kernel_recipe().key() == key
    assert "site-packages" not in json.dumps(recipe.identity())           # no path: environments share it
    monkeypatch.setenv("LSTMGAN_KERNEL_CAPABILITY", "AVX2" if "AVX512" in " ".join(recipe.cflags) else "AVX512")
    assert backends.kernel_recipe().key() != key                           # other flags: another folder
    monkeypatch.delenv("LSTMGAN_KERNEL_CAPABILITY")
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    assert backends.kernel_recipe().key() != key                           # another torch: another folder


def test_a_cache_that_cannot_be_written_is_a_one_line_reason(tmp_path):
    root = tmp_path / "not-a-folder"
    root.write_text("a file where the cache folder should be")     # fails for root too, unlike chmod
    with pytest.raises(kernel_cache.BuildFailed, match="TORCH_EXTENSIONS_DIR"):
        kernel_cache.ensure(backends.kernel_recipe(), root=root)
