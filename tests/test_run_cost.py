"""Acceptance (issue 52, budgets that mean one thing): a run's cost is CPU and wall seconds summed over the pieces it
ran in, and a resume on another host setup is refused unless asked for, then recorded."""

import json
import time

import pytest
import torch

from lstmgan import training
from lstmgan.gan.config import GANConfig
from lstmgan.gan.train import train

from conftest import cli, write_idx_set


class Killed(Exception):
    """The process of one piece dying right after a checkpoint (SIGKILL would lose only what came after it)."""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_idx_set(tmp_path_factory.mktemp("data"), 256)


def tiny_gan(data_dir, **more) -> GANConfig:
    return GANConfig(batch_size=32, val_size=0, max_iterations=240, n_epochs=100, save_interval=80,
                     log_interval=40, snapshot_interval=0, device="cpu", data_dir=str(data_dir), **more)


def test_a_run_killed_twice_records_the_cpu_seconds_of_its_three_pieces(tmp_path, data, monkeypatch):
    real_save, kills = training.Session.save, [80, 160]

    def save(self, *snapshots):
        real_save(self, *snapshots)
        if kills and self.state.progress.iteration == kills[0]:
            kills.pop(0)
            raise Killed

    monkeypatch.setattr(training.Session, "save", save)
    spent, run = [], tmp_path / "run"
    for piece in range(3):
        start = time.process_time()
        try:
            summary = train(tiny_gan(data), run, resume=piece > 0, progress=False)
        except Killed:
            pass
        spent.append(time.process_time() - start)
    cost = summary["cost"]
    assert summary["iterations"] == 240 and cost["pieces"] == 3
    assert cost["cpu_seconds"] == pytest.approx(sum(spent), rel=0.05)
    assert cost["wall_seconds"] > 0 and cost["threads"] == torch.get_num_threads() and cost["device"] == "cpu"
    assert cost["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    progress = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["progress"]
    assert progress["pieces"] == 3 and progress["cpu_seconds"] <= cost["cpu_seconds"]


def test_a_resume_on_another_thread_count_is_refused_unless_allowed_and_then_recorded(tmp_path, data):
    run = tmp_path / "run"
    flags = ["--batch-size", "32", "--val-size", "0", "--save-interval", "4", "--log-interval", "2",
             "--snapshot-interval", "0", "--device", "cpu", "--data-dir", str(data), "--quiet", "--out", str(run)]
    assert cli("gan", "train", "--max-iterations", "4", "--threads", "1", *flags).returncode == 0
    refused = cli("gan", "train", "--max-iterations", "8", "--threads", "2", "--resume", *flags)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "threads 1 -> 2" in refused.stderr and "--allow-host-change" in refused.stderr
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["progress"]["iteration"] == 4
    allowed = cli("gan", "train", "--max-iterations", "8", "--threads", "2", "--resume", "--allow-host-change", *flags)
    assert allowed.returncode == 0, allowed.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["threads"] == 2 and saved["host_changes"][0]["changed"] == {"threads": [1, 2]}
    assert json.loads((run / "summary.json").read_text())["cost"]["pieces"] == 2
