"""Acceptance (reliability): kills and resumes, clean Ctrl-C, divergence, safe checkpoint loading."""

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lstmgan.checkpoint import atomic_save, read_checkpoint
from lstmgan.errors import UsageError

PALINDROME = ["palindrome", "train", "--input-length", "8", "--data-size", "6000", "--batch-size", "50",
              "--max-epoch", "5", "--learning-rate", "0.005", "--num-hidden", "32", "--quiet"]
GAN = ["gan", "train", "--max-iterations", "150", "--save-interval", "10", "--log-interval", "5",
       "--batch-size", "32", "--ema-decay", "0.9", "--snapshot-interval", "0", "--quiet"]


def gan_args(mnist_dir: Path) -> list[str]:
    return GAN + ["--data-dir", str(mnist_dir)]


def start(args, out, resume=False):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "lstmgan", *args, "--out", str(out), "--threads", "1"]
    return subprocess.Popen(cmd + (["--resume"] if resume else []), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def final_state(out: Path) -> tuple[dict, str]:
    data = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    tensors = {f"{part}.{k}": v for part in ("model", "generator", "discriminator")
               for k, v in data.get(part, {}).items()}
    return tensors, (out / "metrics.csv").read_text()


def wait_for_config(proc, out: Path) -> None:
    deadline = time.time() + 60
    while not (out / "config.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)


def time_from_config_to_exit(proc, out: Path) -> float:
    wait_for_config(proc, out)
    started = time.time()
    proc.wait(timeout=300)
    return time.time() - started


@pytest.mark.parametrize("kind", ["palindrome", "gan"])
def test_sigkill_at_random_moments_then_resume_is_identical(tmp_path, kind, request):
    # only the GAN case needs MNIST, so only it asks for (and is skipped without) the mnist_dir fixture
    args = PALINDROME if kind == "palindrome" else gan_args(request.getfixturevalue("mnist_dir"))
    straight_out = tmp_path / "straight"
    straight = start(args, straight_out)
    training_seconds = time_from_config_to_exit(straight, straight_out)
    assert straight.returncode == 0, straight.stderr.read()

    # Kill at random moments scaled to how long training takes on this machine (a fast machine
    # with the compiled kernel finishes the palindrome run in about a second).
    out, rng, kills = tmp_path / "killed", random.Random(1234), 0
    proc = start(args, out)
    while True:
        wait_for_config(proc, out)
        time.sleep(rng.uniform(0.1, 0.5) * training_seconds)
        if proc.poll() is not None or kills == 3:
            break
        proc.kill()                                   # SIGKILL: no handler runs, no cleanup happens
        proc.wait()
        kills += 1
        proc = start(args, out, resume=True)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert kills >= 1

    expected, expected_metrics = final_state(tmp_path / "straight")
    got, got_metrics = final_state(out)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert got_metrics == expected_metrics
    assert not list(out.glob("**/.*.tmp"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_saves_and_exits_cleanly(tmp_path, sig, mnist_dir):
    out = tmp_path / "run"
    proc = start([a if a != "150" else "100000" for a in gan_args(mnist_dir)], out)
    deadline = time.time() + 120
    while not (out / "checkpoints" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == 128 + sig
    message = proc.stderr.read()
    assert "Traceback" not in message and message.count("\n") == 1
    assert "checkpoint saved" in message and f"--out {out} --resume" in message
    state = read_checkpoint(out / "checkpoints" / "last.pt", "gan")
    stopped_at = state["progress"]["iteration"]
    assert stopped_at > 10
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert int(rows[-1]["iteration"]) <= stopped_at
    resumed = start([a if a != "150" else str(stopped_at + 5) for a in gan_args(mnist_dir)], out, resume=True)
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
    assert read_checkpoint(out / "checkpoints" / "last.pt", "gan")["progress"]["iteration"] == stopped_at + 5


def test_exploding_learning_rate_stops_with_a_message_and_keeps_the_last_good_checkpoint(
        tmp_path, monkeypatch, capsys):
    import lstmgan.recurrent.train as palindrome_training
    from lstmgan.cli import main

    real_step, calls = palindrome_training.train_step, []

    def exploding_step(model, optimizer, x, y, max_norm):
        calls.append(1)
        if len(calls) > 50:                      # epoch 1 and half of epoch 2 train normally
            for group in optimizer.param_groups:
                group["lr"] = 1e37
        return real_step(model, optimizer, x, y, max_norm)

    monkeypatch.setattr(palindrome_training, "train_step", exploding_step)
    out = tmp_path / "run"
    code = main(["palindrome", "train", "--input-length", "6", "--data-size", "4000", "--batch-size", "100",
                 "--max-epoch", "5", "--num-hidden", "16", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "training diverged" in err and "iteration 5" in err and "last good checkpoint is kept" in err
    state = read_checkpoint(out / "checkpoints" / "last.pt", "palindrome")
    assert state["progress"]["epoch"] == 2 and state["progress"]["step"] == 0     # saved after epoch 1
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert len(list(csv.DictReader(open(out / "metrics.csv")))) == 1


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_checkpoint_carrying_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "lstmgan-checkpoint", "format_version": 1, "kind": "gan", "config": {},
                "model": {"w": torch.zeros(1)}, "x": Payload(marker)}, evil)
    with pytest.raises(UsageError, match="refused"):
        read_checkpoint(evil)
    assert not marker.exists()
    done = subprocess.run([sys.executable, "-m", "lstmgan", "gan", "sample", "--checkpoint", str(evil),
                           "--out", str(tmp_path / "s.png")], capture_output=True, text=True)
    assert done.returncode == 2 and "refused" in done.stderr and done.stderr.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "s.png").exists()


def test_atomic_save_keeps_the_old_file_when_a_write_fails(tmp_path):
    path = tmp_path / "c.pt"
    atomic_save({"a": torch.ones(3)}, path)
    before = path.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_save({"a": Unpicklable()}, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)
