"""Acceptance (one config mechanism): flags, config.json, --config, --print-config, TensorBoard."""

import csv
import json

import pytest

from lstmgan.cli import build_parser, main
from lstmgan.config import CONFIG_VERSION
from lstmgan.errors import UsageError
from lstmgan.gan import GANConfig
from lstmgan.recurrent import PalindromeConfig

from conftest import cli, snapshot_tree, write_idx_set

VERSION_KEYS = {"lstmgan_version", "torch_version", "python_version"}
PALINDROME = ["palindrome", "train", "--input-length", "4", "--data-size", "300", "--max-epoch", "2",
              "--num-hidden", "8", "--learning-rate", "0.01", "--quiet"]


def gan_args(data_dir):
    return ["gan", "train", "--data-dir", str(data_dir), "--n-epochs", "2", "--batch-size", "32", "--val-size", "32",
            "--eval-interval", "1", "--eval-samples", "40", "--log-interval", "1", "--save-interval", "2",
            "--snapshot-interval", "0", "--ema-decay", "0.9", "--quiet"]


@pytest.fixture
def tiny_mnist(tmp_path):
    return write_idx_set(tmp_path / "tiny", 128)          # the training files only: no test split needed


def read_config(run):
    return {k: v for k, v in json.loads((run / "config.json").read_text()).items() if k not in VERSION_KEYS}


@pytest.mark.parametrize("part", ["palindrome", "gan"])
def test_rerunning_a_config_file_gives_the_same_config_and_metrics(tmp_path, tiny_mnist, part, capsys):
    args = PALINDROME if part == "palindrome" else gan_args(tiny_mnist)
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main([*args[:2], "--config", str(tmp_path / "a" / "config.json"), "--out", str(tmp_path / "b"),
                 "--quiet"]) == 0
    first, rerun = read_config(tmp_path / "a"), read_config(tmp_path / "b")
    if part == "palindrome":      # the re-run runs the backend the first run resolved "auto" to
        assert first.pop("backend") == "auto" and rerun.pop("backend") == first["resolved_backend"]
    assert first == rerun
    assert first["config_version"] == CONFIG_VERSION
    metrics = (tmp_path / "a" / "metrics.csv").read_text()
    assert metrics == (tmp_path / "b" / "metrics.csv").read_text() and len(metrics.splitlines()) >= 3


def test_a_config_rerun_reuses_the_recorded_threads_and_reproduces_metrics_exactly(tmp_path):
    """The first run uses 2 threads; the re-run's default is 1 (the cli helper sets OMP_NUM_THREADS=1)."""
    args = ["palindrome", "train", "--input-length", "6", "--input-dim", "10", "--data-size", "2000",
            "--max-epoch", "2", "--num-hidden", "32", "--learning-rate", "0.01", "--quiet"]
    assert cli(*args, "--threads", "2", "--out", tmp_path / "a").returncode == 0
    recorded = tmp_path / "a" / "config.json"
    assert json.loads(recorded.read_text())["threads"] == 2
    done = cli("palindrome", "train", "--config", recorded, "--out", tmp_path / "b", "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "b" / "config.json").read_text())["threads"] == 2
    metrics = (tmp_path / "a" / "metrics.csv").read_text()
    assert (tmp_path / "b" / "metrics.csv").read_text() == metrics
    # --threads overrides the recorded count, and then the last digits move: the thread count matters here
    done = cli("palindrome", "train", "--config", recorded, "--threads", "1", "--out", tmp_path / "c", "--quiet")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "c" / "config.json").read_text())["threads"] == 1
    assert (tmp_path / "c" / "metrics.csv").read_text() != metrics


def test_flags_given_with_a_config_file_override_it(tmp_path, capsys):
    assert main(PALINDROME + ["--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    assert main(["palindrome", "train", "--config", str(tmp_path / "a" / "config.json"), "--num-hidden", "12",
                 "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_hidden"] == 12 and printed["input_length"] == 4 and printed["kind"] == "palindrome"


def test_print_config_writes_nothing(tmp_path, capsys):
    before = snapshot_tree(tmp_path)
    assert main(["gan", "train", "--conditional", "--d-projection", "--out", str(tmp_path / "run"),
                 "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["conditional"] and printed["d_projection"] and printed["n_epochs"] == 200
    assert snapshot_tree(tmp_path) == before and not (tmp_path / "run").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda c: c | {"learning_rat": 0.1}, "unknown option learning_rat"),
    (lambda c: c | {"config_version": CONFIG_VERSION + 1}, "config version"),
    (lambda c: {k: v for k, v in c.items() if k != "config_version"}, "config version None"),
    (lambda c: c | {"kind": "gan"}, "this is a gan run config; a palindrome config is needed"),
    (lambda c: c | {"num_hidden": "many"}, "--num-hidden must be a positive integer (got 'many')"),
])
def test_a_bad_config_file_is_one_line_exit_2(tmp_path, capsys, edit, message):
    assert main(PALINDROME + ["--out", str(tmp_path / "a")]) == 0
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    (tmp_path / "bad.json").write_text(json.dumps(edit(config)))
    capsys.readouterr()
    before = snapshot_tree(tmp_path)
    assert main(["palindrome", "train", "--config", str(tmp_path / "bad.json"), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert snapshot_tree(tmp_path) == before


def test_from_dict_refuses_unknown_keys_instead_of_dropping_them():
    with pytest.raises(UsageError, match="unknown option colour"):
        GANConfig.from_dict({"colour": "red"})
    assert PalindromeConfig.from_dict({"num_hidden": 7}).num_hidden == 7


@pytest.mark.parametrize("command, config_class", [("palindrome", PalindromeConfig), ("gan", GANConfig)])
def test_every_option_is_a_flag_whose_help_shows_its_default(command, config_class):
    parser = build_parser()
    help_text = " ".join(parser.parse_args([command, "train", "--out", "x"]).config_keys)
    assert help_text.split() == [f.name for f in config_class.option_fields()]
    sub = parser._subparsers._group_actions[0].choices[command]._subparsers._group_actions[0].choices["train"]
    rendered = " ".join(sub.format_help().split())
    for f in config_class.option_fields():
        assert f"--{f.name.replace('_', '-')}" in rendered, f.name
    assert "(default: 0.0002)" in rendered or "(default: 0.001)" in rendered


def test_tensorboard_mirrors_each_metrics_step_once_across_a_resume(tmp_path, tiny_mnist):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    args = gan_args(tiny_mnist) + ["--n-epochs", "4", "--tensorboard", "--out", str(run)]
    assert main(args + ["--max-iterations", "5"]) == 0         # stops mid-epoch 2 (3 batches an epoch)
    assert main(args + ["--resume", "--max-iterations", "0"]) == 0
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    loss_steps = [int(r["iteration"]) for r in rows if r["d_loss"]]
    fid_steps = [int(r["iteration"]) for r in rows if r["fid"]]
    assert [e.step for e in events.Scalars("d_loss")] == loss_steps == list(range(1, 13))
    assert [e.step for e in events.Scalars("fid")] == fid_steps and len(fid_steps) == 4
    assert [e.value for e in events.Scalars("fid")] == pytest.approx([float(r["fid"]) for r in rows if r["fid"]])
    image_steps = [e.step for e in events.Images("samples")]
    assert image_steps == sorted(set(image_steps)) and 12 in image_steps
