"""Acceptance: every command validates its input up front — one line, exit code 2, no traceback,
and no existing file touched."""

import gzip
import shutil
import warnings

import pytest
import torch

from lstmgan.cli import main
from lstmgan.gan import GANConfig
from lstmgan.gan.train import train as train_gan
from lstmgan.recurrent import PalindromeConfig
from lstmgan.recurrent.train import train as train_palindrome

from conftest import cli, snapshot_tree


@pytest.fixture(scope="module")
def world(tmp_path_factory, mnist_dir):
    """Existing data a mistaken command must not touch: runs of both kinds and odd files (the GAN runs need MNIST)."""
    root = tmp_path_factory.mktemp("world")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_palindrome(PalindromeConfig(input_length=4, data_size=300, max_epoch=1, num_hidden=8, device="cpu"),
                         root / "pal", progress=False)
    gan = GANConfig(max_iterations=3, save_interval=3, log_interval=1, device="cpu", data_dir=str(mnist_dir),
                    snapshot_interval=0)
    train_gan(gan, root / "gan", progress=False)
    train_gan(GANConfig(**{**gan.__dict__, "conditional": True}), root / "cgan", progress=False)
    (root / "garbage.pt").write_bytes(b"this is not a checkpoint")
    data = (root / "gan" / "checkpoints" / "last.pt").read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 2])
    torch.save({"weights": torch.zeros(3)}, root / "foreign.pt")
    bad = torch.load(root / "gan" / "checkpoints" / "last.pt", weights_only=True)
    bad["model"]["net.0.weight"] = torch.zeros(128, 7)
    torch.save(bad, root / "reshaped.pt")
    future = dict(bad, format_version=99)
    torch.save(future, root / "future.pt")
    corrupt = root / "corrupt-mnist"
    shutil.copytree(mnist_dir, corrupt)
    blob = gzip.decompress((corrupt / "train-labels-idx1-ubyte.gz").read_bytes())
    (corrupt / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(blob[:-7]))
    (root / "notes.txt").write_text("keep me")
    return root


P, G, C = "pal/checkpoints/last.pt", "gan/checkpoints/last.pt", "cgan/checkpoints/last.pt"

CASES = [
    # palindrome train: ranges and choices
    (["palindrome", "train", "--input-length", "0"], "--input-length must be a positive integer"),
    (["palindrome", "train", "--input-length", "-4"], "--input-length must be a positive integer"),
    (["palindrome", "train", "--input-length", "x"], "invalid int value"),
    (["palindrome", "train", "--num-hidden", "-1"], "--num-hidden must be a positive integer"),
    (["palindrome", "train", "--batch-size", "0"], "--batch-size must be a positive integer"),
    (["palindrome", "train", "--data-size", "-5"], "--data-size must be a positive integer"),
    (["palindrome", "train", "--max-epoch", "0"], "--max-epoch must be a positive integer"),
    (["palindrome", "train", "--learning-rate", "0"], "--learning-rate must be positive"),
    (["palindrome", "train", "--learning-rate", "nan"], "--learning-rate must be positive"),
    (["palindrome", "train", "--max-norm", "-1"], "--max-norm must be positive"),
    (["palindrome", "train", "--portion-train", "0"], "--portion-train must be strictly between 0 and 1"),
    (["palindrome", "train", "--portion-train", "1"], "--portion-train must be strictly between 0 and 1"),
    (["palindrome", "train", "--portion-train", "1.5"], "--portion-train must be strictly between 0 and 1"),
    (["palindrome", "train", "--input-dim", "5"], "--input-dim must be 1"),
    (["palindrome", "train", "--num-classes", "1"], "--num-classes must be an integer >= 2"),
    (["palindrome", "train", "--model", "lstn"], "--model must be one of lstm, rnn, gru, transformer, lru"),
    (["palindrome", "train", "--device", "tpu"], "is not a device"),
    (["palindrome", "train", "--device", "cuda:7"], "--device cuda:7: CUDA is not available on this machine"),
    (["palindrome", "train", "--patience", "-1"], "--patience must be 0 or a positive integer"),
    (["palindrome", "train", "--forget-bias", "chrono:1"], "chrono init needs 'chrono' or 'chrono:N'"),
    (["palindrome", "train", "--forget-bias", "chrono:x"], "chrono init needs 'chrono' or 'chrono:N'"),
    (["palindrome", "train", "--forget-bias", "chrono:-5"], "chrono init needs 'chrono' or 'chrono:N'"),
    (["palindrome", "train", "--forget-bias", "warm"], "expected a number, 'uniform' or 'chrono[:N]'"),
    (["palindrome", "train", "--init-from", "{root}/" + G], "this is a gan checkpoint"),
    (["palindrome", "train", "--config", "{root}/notes.txt"], "not a readable JSON file"),
    (["palindrome", "train", "--config", "{root}/gan/config.json"], "this is a gan run config"),
    (["palindrome", "train", "--backend", "fast"], "--backend must be one of auto, compiled, eager, per-gate"),
    (["palindrome", "train", "--threads", "0"], "--threads must be a positive integer"),
    (["palindrome", "train", "--frobnicate"], "unrecognized arguments"),
    (["palindrome", "train", "--out", "{root}/pal"], "already exists and is not empty"),
    (["palindrome", "train", "--out", "{root}/notes.txt"], "already exists and is not empty"),
    (["palindrome", "train", "--out", "{root}/nowhere", "--resume"], "holds no run to resume"),
    (["palindrome", "train", "--out", "{root}/pal", "--resume", "--learning-rate", "0.5"], "differs from the run"),
    (["palindrome", "train", "--out", "{root}/gan", "--resume"], "this is a gan checkpoint"),
    # palindrome evaluate / sweep
    (["palindrome", "evaluate", "--checkpoint", "{root}/missing.pt"], "checkpoint not found"),
    (["palindrome", "evaluate", "--checkpoint", "{root}/" + G], "this is a gan checkpoint"),
    (["palindrome", "evaluate", "--checkpoint", "{root}/garbage.pt"], "not a readable checkpoint"),
    (["palindrome", "evaluate", "--checkpoint", "{root}/" + P, "--n", "0"], "--n must be a positive integer"),
    (["palindrome", "sweep", "--lengths", "0", "--out", "{root}/sw"], "--input-length must be a positive"),
    (["palindrome", "sweep", "--models", "lstn", "--out", "{root}/sw"], "invalid choice"),
    (["palindrome", "sweep", "--jobs", "0", "--out", "{root}/sw"], "--jobs must be a positive integer"),
    (["palindrome", "sweep", "--out", "{root}/pal"], "already exists and is not empty"),
    (["palindrome", "sweep", "--out", "{root}/pal", "--resume"], "holds no sweep to resume"),
    # gan train
    (["gan", "train", "--n-epochs", "0"], "--n-epochs must be a positive integer"),
    (["gan", "train", "--batch-size", "0"], "--batch-size must be a positive integer"),
    (["gan", "train", "--lr", "-0.1"], "--lr must be positive"),
    (["gan", "train", "--latent-dim", "0"], "--latent-dim must be a positive integer"),
    (["gan", "train", "--save-interval", "0"], "--save-interval must be a positive integer"),
    (["gan", "train", "--ema-decay", "1.5"], "--ema-decay must be in [0, 1)"),
    (["gan", "train", "--b1", "1"], "in [0, 1)"),
    (["gan", "train", "--val-size", "-1"], "--val-size must be 0 or a positive integer"),
    (["gan", "train", "--val-size", "60000"], "--val-size must be below the 60000 training images"),
    (["gan", "train", "--val-size", "0", "--eval-interval", "5"], "--eval-interval must be 0 when --val-size is 0"),
    (["gan", "train", "--d-projection"], "--d-projection must be used with --conditional or --clusters"),
    (["gan", "train", "--g-conditional-bn"], "--g-conditional-bn must be used with --conditional or --clusters"),
    (["gan", "train", "--clusters", "10", "--conditional"], "--clusters must be 0 with --conditional"),
    (["gan", "train", "--clusters", "1001"], "--clusters must be at most 1000"),
    (["gan", "train", "--clusters", "-1"], "--clusters must be 0 or a positive integer"),
    (["gan", "train", "--dataset", "cifar"], "--dataset must be one of mnist, fashion-mnist (got 'cifar')"),
    (["gan", "train", "--data-dir", "{root}/no-such-folder"], "files not found there"),
    (["gan", "train", "--data-dir", "{root}/corrupt-mnist"], "truncated"),
    (["gan", "train", "--out", "{root}/gan"], "already exists and is not empty"),
    (["gan", "train", "--out", "{root}/pal", "--resume"], "this is a palindrome checkpoint"),
    (["gan", "train", "--out", "{root}/gan", "--resume", "--latent-dim", "64"], "differs from the run"),
    # gan sample / interpolate / evaluate / export
    (["gan", "sample", "--checkpoint", "{root}/missing.pt", "--out", "{root}/s.png"], "checkpoint not found"),
    (["gan", "sample", "--checkpoint", "{root}/" + P, "--out", "{root}/s.png"], "this is a palindrome checkpoint"),
    (["gan", "sample", "--checkpoint", "{root}/garbage.pt", "--out", "{root}/s.png"], "not a readable checkpoint"),
    (["gan", "sample", "--checkpoint", "{root}/truncated.pt", "--out", "{root}/s.png"], "not a readable checkpoint"),
    (["gan", "sample", "--checkpoint", "{root}/foreign.pt", "--out", "{root}/s.png"], "not an lstmgan checkpoint"),
    (["gan", "sample", "--checkpoint", "{root}/reshaped.pt", "--out", "{root}/s.png"], "has shape (128, 7)"),
    (["gan", "sample", "--checkpoint", "{root}/future.pt", "--out", "{root}/s.png"], "newer than this"),
    (["gan", "sample", "--checkpoint", "pretrained:nope", "--out", "{root}/s.png"], "no pretrained model"),
    (["gan", "sample", "--checkpoint", "{root}/" + G, "--out", "{root}/s.jpg"], "must end in .png or .npy"),
    (["gan", "sample", "--checkpoint", "{root}/" + G, "--out", "{root}/" + G], "must end in .png or .npy"),
    (["gan", "sample", "--checkpoint", "{root}/" + G, "--out", "{root}/no/dir/s.png"], "does not exist"),
    (["gan", "sample", "--checkpoint", "{root}/" + G, "--out", "{root}/s.png", "--n", "0"], "--n must be"),
    (["gan", "sample", "--checkpoint", "{root}/" + G, "--out", "{root}/s.png", "--digit", "3"],
     "--digit needs a conditional generator"),
    (["gan", "sample", "--checkpoint", "{root}/" + C, "--out", "{root}/s.png", "--digit", "11"],
     "--digit must be in 0..9"),
    (["gan", "sample", "--checkpoint", "{root}/" + C, "--out", "{root}/s.png", "--digit", "-1"],
     "--digit must be in 0..9"),
    (["gan", "sample", "--checkpoint", "{root}/" + C, "--out", "{root}/s.png", "--n", "25"], "multiple of 10"),
    (["gan", "interpolate", "--checkpoint", "{root}/" + G, "--out", "{root}/i.png", "--steps", "1"],
     "--steps must be at least 2"),
    (["gan", "interpolate", "--checkpoint", "{root}/" + G, "--out", "{root}/i.png", "--mode", "cubic"],
     "invalid choice"),
    (["gan", "interpolate", "--checkpoint", "{root}/" + G, "--out", "{root}/i.txt"], "must end in .png or .npy"),
    (["gan", "interpolate", "--checkpoint", "{root}/" + G, "--out", "{root}/i.png", "--digit", "3"],
     "--digit needs a conditional generator"),
    (["gan", "evaluate", "--checkpoint", "{root}/" + G, "--n", "0"], "--n must be at least 10"),
    (["gan", "evaluate", "--checkpoint", "{root}/" + G, "--seeds", "0"], "--seeds must be a positive integer"),
    (["gan", "evaluate", "--checkpoint", "{root}/missing.pt"], "checkpoint not found"),
    (["gan", "export", "--checkpoint", "{root}/" + G, "--out", "{root}/g.bin"], "must end in .safetensors"),
    (["gan", "export", "--checkpoint", "{root}/" + G, "--out", "{root}/notes.txt"], "must end in .safetensors"),
    (["palindrome", "export", "--checkpoint", "{root}/" + G, "--out", "{root}/p.safetensors"],
     "this is a gan checkpoint"),
    (["gan", "export", "--checkpoint", "{root}/" + G, "--out", "{root}/g.safetensors", "--metrics", "{root}/notes.txt"],
     "not a readable JSON file"),
    (["gan", "export", "--checkpoint", "{root}/" + P, "--out", "{root}/g.safetensors"],
     "this is a palindrome checkpoint"),
    # data
    (["data", "fetch", "svhn"], "invalid choice: 'svhn'"),
    (["data", "fetch", "mnist", "--dir", "{root}/notes.txt/sub"], "cannot create"),
    ([], "the following arguments are required"),
]


def run_main(args, capsys) -> tuple[int, str]:
    try:
        code = main(args)
    except SystemExit as exit_:         # argparse's own errors
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, message", CASES, ids=[" ".join(a[:2] + a[2:4]) for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(world, capsys, args, message):
    args = [a.format(root=world) for a in args]
    if args[:2] in (["palindrome", "train"], ["gan", "train"]) and "--out" not in args:
        args += ["--out", str(world / "new-run")]
    before = snapshot_tree(world)
    code, err = run_main(args, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err
    assert snapshot_tree(world) == before
    assert not (world / "new-run").exists()


@pytest.mark.parametrize("args", [
    ["palindrome", "train", "--input-length", "0"],
    ["gan", "sample", "--checkpoint", "{root}/garbage.pt", "--out", "{root}/s.png"],
    ["gan", "train", "--data-dir", "{root}/corrupt-mnist", "--out", "{root}/new-run"],
])
def test_real_processes_exit_2_with_one_line(world, args):
    before = snapshot_tree(world)
    done = cli(*[a.format(root=world) for a in args])
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert snapshot_tree(world) == before
