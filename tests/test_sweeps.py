"""Acceptance (studies on Ray): the same tables as the local engine, fault tolerance, clean errors."""

import contextlib
import csv
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace

import pytest
import torch

from lstmgan.cli import main
from lstmgan.gan import sweep as gan_sweep_module

from conftest import snapshot_tree, write_idx_set

pytest.importorskip("ray")

PALINDROME = ["palindrome", "sweep", "--models", "lstm", "rnn", "gru", "transformer", "lru", "--lengths", "4", "6",
              "--seeds", "0", "1",
              "--max-epoch", "2", "--data-size", "400", "--num-hidden", "8", "--threads", "1", "--quiet"]


def gan_sweep(data_dir):
    return ["gan", "sweep", "--d-dropout", "0", "0.3", "--seeds", "0", "--data-dir", str(data_dir),
            "--n-epochs", "2", "--batch-size", "32", "--val-size", "32", "--eval-interval", "1",
            "--eval-samples", "40", "--save-interval", "2", "--log-interval", "2", "--snapshot-interval", "0",
            "--ema-decay", "0.9", "--threads", "1", "--quiet"]


def table(out):
    """results.csv without the column that names the sweep's own folder."""
    rows = list(csv.DictReader(open(out / "results.csv")))
    return [{k: v for k, v in row.items() if k != "run"} for row in rows]


def final_weights(out):
    return {run.name: torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
            for run in sorted((out / "runs").iterdir())}


def test_a_palindrome_sweep_on_ray_gives_the_local_table(tmp_path):
    assert main(PALINDROME + ["--out", str(tmp_path / "local")]) == 0
    assert main(PALINDROME + ["--engine", "ray", "--out", str(tmp_path / "ray")]) == 0
    assert len(table(tmp_path / "local")) == 20                         # all five models, 2 lengths, 2 seeds
    assert table(tmp_path / "ray") == table(tmp_path / "local")
    assert (tmp_path / "ray" / "results.md").read_text() == (tmp_path / "local" / "results.md").read_text()


def test_a_gan_sweep_on_ray_survives_a_killed_run_and_gives_the_local_results(tmp_path, monkeypatch):
    data = write_idx_set(tmp_path / "data", 128)
    assert main(gan_sweep(data) + ["--out", str(tmp_path / "local")]) == 0
    marker = tmp_path / "killed"
    monkeypatch.setattr(gan_sweep_module, "STUDY", replace(gan_sweep_module.STUDY,
                                                           train=killed_after_first_checkpoint(marker)))
    assert main(gan_sweep(data) + ["--engine", "ray", "--max-retries", "2", "--out", str(tmp_path / "ray")]) == 0
    assert marker.is_file()                                   # one run really died after its first checkpoint
    assert table(tmp_path / "ray") == table(tmp_path / "local") and len(table(tmp_path / "local")) == 2
    local, ray = final_weights(tmp_path / "local"), final_weights(tmp_path / "ray")
    assert local.keys() == ray.keys()
    for run in local:
        assert all(torch.equal(local[run][k], ray[run][k]) for k in local[run]), run
        metrics = [(out / "runs" / run / "metrics.csv").read_text() for out in (tmp_path / "local", tmp_path / "ray")]
        assert metrics[0] == metrics[1], run
    header = (tmp_path / "ray" / "results.md").read_text().splitlines()[0]
    assert "--d-dropout" in header and "FID / floor" in header and (tmp_path / "ray" / "recipes.png").is_file()


def killed_after_first_checkpoint(marker):
    """GAN training whose process kills itself (SIGKILL) right after its first checkpoint, once in the sweep (the
    first run to get there writes `marker`). A closure, so that Ray ships it by value to its workers."""
    def train(config, run_dir, **kwargs):
        import os
        import threading
        from pathlib import Path

        from lstmgan.gan.train import train as gan_train

        def watch():
            while not (Path(run_dir) / "checkpoints" / "last.pt").exists():
                threading.Event().wait(0.02)
            try:
                with open(marker, "x") as f:
                    f.write(str(run_dir))
            except FileExistsError:
                return
            os.kill(os.getpid(), 9)
        if not marker.exists():
            threading.Thread(target=watch, daemon=True).start()
        return gan_train(config, run_dir, **kwargs)
    return train


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_sweep_joins_a_running_ray_head(tmp_path, monkeypatch):
    ray_bin = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")        # Ray's socket paths must stay short
    # a head as docs/distributed.md sets up a cluster: token auth on, the token given to the head and to the driver
    # (this head, like any `ray start --head`, listens on all interfaces whatever --node-ip-address says)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run([ray_bin, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                              "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                              f"--temp-dir={temp}"], capture_output=True, text=True, env=env,
                             timeout=180)
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        lengths = PALINDROME.index("--lengths")
        args = PALINDROME[:3] + ["lstm"] + PALINDROME[lengths:lengths + 2] + PALINDROME[lengths + 3:]   # 2 runs
        assert main(args + ["--engine", "ray", "--address", f"127.0.0.1:{port}", "--out", str(tmp_path / "sw")]) == 0
        assert len(table(tmp_path / "sw")) == 2
    finally:
        stop_ray_head(temp, port)
        shutil.rmtree(temp, ignore_errors=True)


def stop_ray_head(temp: str, port: int) -> None:
    """Stop the head started with --temp-dir=`temp` --port=`port`, and only it (`ray stop` would stop every Ray of
    this user): its processes name `temp` or `...:port` (the Ray Client server) on their command line; its workers
    and agents are their children."""
    import psutil

    def of_this_head(args) -> bool:
        return any(temp in arg or (arg.startswith("--") and arg.endswith(f":{port}")) for arg in args or ())

    heads = [p for p in psutil.process_iter(["cmdline"]) if of_this_head(p.info["cmdline"])]
    processes = {p.pid: p for head in heads for p in [head, *head.children(recursive=True)]}.values()
    for p in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(processes, timeout=30)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


@pytest.mark.parametrize("extra, message", [
    (["--engine", "spark"], "invalid choice: 'spark'"),
    (["--engine", "ray", "--max-retries", "-1"], "--max-retries must be 0 or a positive integer"),
    (["--engine", "ray", "--address", "127.0.0.1:9"], "--address 127.0.0.1:9: no Ray cluster answers there"),
    (["--engine", "ray", "--address", "nowhere"], "--address must be auto or HOST:PORT"),
    (["--address", "127.0.0.1:9"], "--address and --gpus-per-run apply to --engine ray"),
])
def test_bad_sweep_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, extra, message):
    before = snapshot_tree(tmp_path)
    started = time.time()
    try:
        code = main(PALINDROME + extra + ["--out", str(tmp_path / "sw")])
    except SystemExit as exit_:            # argparse's own errors
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert time.time() - started < 15 and snapshot_tree(tmp_path) == before and not (tmp_path / "sw").exists()


def test_without_ray_installed_one_line_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)             # `import ray` now fails as if not installed
    assert main(PALINDROME + ["--engine", "ray", "--out", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'lstmgan[ray]'" in err and not (tmp_path / "sw").exists()
