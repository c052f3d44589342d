"""Acceptance: the LSTM learns; the CLI writes complete run directories; sweeps tabulate."""

import csv
import json
import warnings

import pytest
import torch

from lstmgan import load_checkpoint
from lstmgan.errors import UsageError
from lstmgan.recurrent.sweep import sweep
from lstmgan.recurrent.train import PalindromeConfig, train

from conftest import cli


def quick(**kw):
    base = dict(input_length=5, batch_size=50, learning_rate=0.01, max_epoch=25, patience=1, device="cpu")
    return PalindromeConfig(**{**base, **kw})


def test_lstm_learns_t5_to_99_percent(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = train(quick(), tmp_path / "run", progress=False)
    assert summary["final_test_accuracy"] >= 0.99        # chance is 0.10
    assert summary["first_full_epoch"] is not None


def test_run_directory_contents_and_reproducibility(tmp_path, monkeypatch):
    import lstmgan.recurrent.train as palindrome_train

    drawn = []     # what curves.png shows: the panels handed to the plotting helper
    plot = palindrome_train.line_plot
    monkeypatch.setattr(palindrome_train, "line_plot", lambda path, panels, **kw: (drawn.append(panels),
                                                                                    plot(path, panels, **kw)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = train(quick(max_epoch=3, patience=0), tmp_path / "a", progress=False)
        train(quick(max_epoch=3, patience=0), tmp_path / "b", progress=False)
    run = tmp_path / "a"
    for name in ("config.json", "metrics.csv", "curves.png", "summary.json", "checkpoints/last.pt",
                 "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["input_length"] == 5 and config["num_hidden"] == 128 and "torch_version" in config
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert set(rows[0]) == {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    assert (run / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()
    # the figure plots metrics.csv: loss and accuracy, train and test, over the epochs
    loss, accuracy = drawn[0]
    for panel, column in ((loss, "loss"), (accuracy, "accuracy")):
        for split in ("train", "test"):
            epochs, values = panel["series"][split]
            assert list(epochs) == [1, 2, 3]
            assert list(values) == pytest.approx([float(r[f"{split}_{column}"]) for r in rows])
    loaded = load_checkpoint(run / "checkpoints" / "last.pt")
    assert loaded.kind == "palindrome" and loaded.config["input_length"] == 5 and not loaded.model.training
    assert a["epochs"] == 3


def test_cli_train_and_evaluate(tmp_path):
    out = tmp_path / "run"
    done = cli("palindrome", "train", "--input_length", "5", "--input-dim", "10", "--learning_rate", "0.01",
               "--max-epoch", "2", "--batch-size", "50", "--seed", "1", "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    assert "test accuracy" in done.stdout and str(out) in done.stdout
    assert "only 1000 distinct palindromes" in done.stderr       # the data-size warning, one line
    result = cli("palindrome", "evaluate", "--checkpoint", out / "checkpoints" / "last.pt", "--n", "300")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["n"] == 300 and scores["input_length"] == 5
    from lstmgan.recurrent.evaluate import evaluate_checkpoint
    assert scores["accuracy"] == evaluate_checkpoint(out / "checkpoints" / "last.pt", 300, device="cpu")["accuracy"]
    elsewhere = evaluate_checkpoint(out / "checkpoints" / "last.pt", 300, device="cpu", input_length=9)
    assert elsewhere["input_length"] == 9 and elsewhere["trained_input_length"] == 5


def test_resume_continues_to_the_same_result(tmp_path):
    cfg = quick(max_epoch=4, patience=0, input_length=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(cfg, tmp_path / "straight", progress=False)
        train({**cfg.__dict__, "max_epoch": 2}, tmp_path / "split", progress=False)
        train({"max_epoch": 4}, tmp_path / "split", resume=True, progress=False)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt").model.state_dict()
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "straight" / "metrics.csv").read_text() == (tmp_path / "split" / "metrics.csv").read_text()


def test_resume_refuses_a_changed_learning_rate(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(quick(max_epoch=1), tmp_path / "r", progress=False)
    done = cli("palindrome", "train", "--out", tmp_path / "r", "--resume", "--learning-rate", "0.5")
    assert done.returncode == 2 and "differs from the run being resumed" in done.stderr


def test_rnn_trains_too(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = train(quick(model="rnn", input_length=4, max_epoch=15), tmp_path / "rnn", progress=False)
    assert summary["final_test_accuracy"] > 0.5


def test_sweep_writes_table_and_figures(tmp_path):
    out = tmp_path / "sweep"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = sweep({"model": ["lstm", "rnn"], "input_length": [4, 6], "seed": [0, 1]},
                        {"max_epoch": 2, "batch_size": 50, "learning_rate": 0.01, "device": "cpu"}, out,
                        progress=False)
    assert len(results) == 8
    for name in ("results.csv", "results.md", "accuracy_vs_length.png", "curves_T4.png", "curves_T6.png"):
        assert (out / name).is_file(), name
    table = (out / "results.md").read_text()
    assert "| LSTM | 4 |" in table and "| RNN | 6 |" in table and "min–max" in table
    assert len(list(csv.DictReader(open(out / "results.csv")))) == 8
    # a second call with --resume finds every run finished and trains nothing
    again = sweep({"model": ["lstm", "rnn"], "input_length": [4, 6], "seed": [0, 1]},
                  {"max_epoch": 2, "batch_size": 50, "learning_rate": 0.01, "device": "cpu"}, out,
                  resume=True, progress=False)
    assert [r["final_test_accuracy"] for r in again] == [r["final_test_accuracy"] for r in results]
    # a resume may change the budget (epochs, patience), never what is trained
    grid = {"model": ["lstm", "rnn"], "input_length": [4, 6], "seed": [0, 1]}
    sweep(grid, {"max_epoch": 3, "batch_size": 50, "learning_rate": 0.01, "device": "cpu"}, out, resume=True,
          progress=False)
    with pytest.raises(UsageError, match="started with other flags"):
        sweep(grid, {"max_epoch": 3, "batch_size": 50, "learning_rate": 0.1, "device": "cpu"}, out, resume=True,
              progress=False)


def test_cli_sweep_with_a_varied_flag(tmp_path):
    out = tmp_path / "lr"
    done = cli("palindrome", "sweep", "--models", "lstm", "--lengths", "4", "--seeds", "0",
               "--learning-rate", "0.01", "0.001", "--max-epoch", "1", "--batch-size", "100", "--out", out,
               "--quiet")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert sorted(float(r["learning_rate"]) for r in rows) == [0.001, 0.01]


def test_forget_bias_default_is_3_and_uniform_restores_the_seed_init(tmp_path):
    assert PalindromeConfig().forget_bias == 3.0
    for value, expected in (("uniform", None), ("1.5", 1.5)):
        out = tmp_path / value
        done = cli("palindrome", "train", "--input-length", "3", "--max-epoch", "1", "--num-hidden", "8",
                   "--forget-bias", value, "--out", out, "--quiet")
        assert done.returncode == 0, done.stderr
        assert json.loads((out / "config.json").read_text())["forget_bias"] == expected
    b_f = load_checkpoint(tmp_path / "uniform" / "checkpoints" / "last.pt").model.b_f
    assert b_f.abs().max() < 1.0          # torch-like uniform init (then one epoch of training)


def test_give_up_stops_a_stalled_run(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = train(quick(input_length=12, data_size=400, learning_rate=1e-7, max_epoch=40, patience=0,
                              give_up=2), tmp_path / "stalled", progress=False)
    assert summary["stopped_early"] == "stalled" and summary["epochs"] < 40


def test_chrono_init_spreads_forget_time_scales_and_leaves_the_rest():
    import math

    from lstmgan.recurrent import LSTM

    torch.manual_seed(0)
    plain = LSTM(10, 64)
    torch.manual_seed(0)
    chrono = LSTM(10, 64, chrono_tmax=200)
    assert chrono.b_f.min() >= 0 and chrono.b_f.max() <= math.log(199)
    assert chrono.b_f.max() > math.log(199) - 1 and chrono.b_f.std() > 0.5     # spread, not a constant
    assert torch.equal(chrono.b_i, -chrono.b_f)
    for name, p in plain.named_parameters():
        if name not in ("b_f", "b_i"):
            assert torch.equal(p, getattr(chrono, name)), name


def test_chrono_is_recorded_and_survives_resume(tmp_path):
    out = tmp_path / "run"
    base = ["palindrome", "train", "--input-length", "6", "--data-size", "600", "--num-hidden", "8",
            "--forget-bias", "chrono:50", "--out", out, "--quiet"]
    assert cli(*base, "--max-epoch", "1").returncode == 0
    assert json.loads((out / "config.json").read_text())["forget_bias"] == "chrono:50"
    done = cli(*base, "--max-epoch", "2", "--resume")
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(out / "checkpoints" / "last.pt").config["forget_bias"] == "chrono:50"
    done = cli(*base[:-3], "--forget-bias", "chrono", "--out", out, "--resume", "--max-epoch", "3")
    assert done.returncode == 2 and "differs from the run being resumed" in done.stderr


def test_init_from_starts_at_the_given_weights(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = train(quick(max_epoch=4, patience=0, input_dim=10, num_hidden=16), tmp_path / "source",
                       progress=False)
        # a learning rate too small to move anything: the first epoch scores what the source scores
        again = train(quick(max_epoch=1, patience=0, input_dim=10, num_hidden=16, learning_rate=1e-12,
                            init_from=str(tmp_path / "source" / "checkpoints" / "last.pt")), tmp_path / "again",
                      progress=False)
        fresh = train(quick(max_epoch=1, patience=0, input_dim=10, num_hidden=16, learning_rate=1e-12),
                      tmp_path / "fresh", progress=False)
    assert source["final_test_accuracy"] > 0.5
    assert again["final_test_accuracy"] == source["final_test_accuracy"]
    assert fresh["final_test_accuracy"] < 0.5
    with pytest.raises(UsageError, match="--num-hidden is 16, this run's is 8"):
        train(quick(max_epoch=1, input_dim=10, num_hidden=8, init_from=str(tmp_path / "source" / "checkpoints" /
                                                                           "last.pt")), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_patience_waits_for_the_target_accuracy(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = train(quick(target_accuracy=0.5, patience=2, max_epoch=20), tmp_path / "run", progress=False)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert summary["stopped_early"] == "solved" and summary["epochs"] < 20
    assert [float(r["test_accuracy"]) >= 0.5 for r in rows[-2:]] == [True, True]
    assert not (len(rows) > 2 and float(rows[-3]["test_accuracy"]) >= 0.5)      # it stopped at the first chance


def test_the_shipped_palindrome_models_load_and_remember_200_digits():
    import time

    from lstmgan.recurrent.evaluate import evaluate_checkpoint
    from lstmgan.shipped import pretrained_index

    shipped = {name: entry for name, entry in pretrained_index().items() if entry["kind"] == "palindrome"}
    assert {"palindrome-T200", "palindrome-T500", "palindrome-T1000", "palindrome-T10000"} <= set(shipped)
    for name in shipped:
        loaded = load_checkpoint(f"pretrained:{name}")
        assert loaded.config["input_length"] == int(name.split("-T")[1]) and not loaded.model.training
        if name.count("-") == 1:                                        # section 4's LSTMs
            assert loaded.data["metrics"]["accuracy"] >= 0.99             # as measured when it was shipped
    started = time.time()
    scores = evaluate_checkpoint("pretrained:palindrome-T200", n=2000, seed=2024, device="cpu")
    assert scores["input_length"] == 200 and scores["n"] == 2000
    assert scores["accuracy"] >= 0.99 and time.time() - started < 30       # chance is 0.10


def test_round_4s_contestants_are_shipped_and_score_what_their_metrics_say():
    from lstmgan.recurrent.evaluate import evaluate_checkpoint
    from lstmgan.recurrent.registry import REGISTRY
    from lstmgan.shipped import pretrained_index

    contestants = [n for n in pretrained_index() if n.startswith("palindrome-") and n.count("-") == 2]
    assert {"palindrome-rnn-T200"} <= set(contestants)
    for name in contestants:
        loaded = load_checkpoint(f"pretrained:{name}")
        model = name.split("-")[1]
        assert loaded.config["model"] == model in REGISTRY and loaded.config["data"] == "fresh"
        assert loaded.config["batch_size"] == 100 and loaded.config["max_epoch"] <= 20   # round 4: 20 epochs, or a cap
        recorded = loaded.data["metrics"]
        scores = evaluate_checkpoint(f"pretrained:{name}", n=recorded["n"], seed=recorded["seed"], device="cpu")
        assert scores["accuracy"] == recorded["accuracy"]                # reproduced exactly, from the file


def test_the_shipped_t10000_model_remembers_ten_thousand_digits():
    from lstmgan.recurrent.evaluate import evaluate_checkpoint

    scores = evaluate_checkpoint("pretrained:palindrome-T10000", n=200, seed=2024, device="cpu")
    assert scores["input_length"] == 10000 and scores["trained_input_length"] == 10000
    assert scores["accuracy"] >= 0.98                                   # 99.8% on 2,000; chance is 0.10
