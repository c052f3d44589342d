"""Acceptance: GAN training on real MNIST, exact resume, sampling and interpolation."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from lstmgan import load_checkpoint
from lstmgan.gan import Discriminator, GANConfig, Generator, mnist
from lstmgan.gan.classifier import load_classifier
from lstmgan.gan.models import generate
from lstmgan.gan.train import train
from lstmgan.seeding import random_stream

from conftest import cli, write_idx_set


def short(**kw):
    return GANConfig(**{**dict(n_epochs=1, max_iterations=300, save_interval=100, log_interval=50,
                                device="cpu", snapshot_interval=0), **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("gan") / "run"
    train(short(data_dir=str(mnist_dir)), out, progress=False)
    return out


def test_models_have_the_seed_architecture():
    G, D = Generator(100), Discriminator()
    linears = [m for m in G.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (100, 128), (128, 256), (256, 512), (512, 512), (512, 1024), (1024, 784)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in G.net) == 5
    assert sum(isinstance(m, torch.nn.GELU) for m in G.net) == 1
    assert isinstance(G.net[-1], torch.nn.Tanh)
    assert [(m.in_features, m.out_features) for m in D.net if isinstance(m, torch.nn.Linear)] == [
        (784, 512), (512, 256), (256, 1)]
    images = G.eval()(torch.randn(4, 100))
    assert images.shape == (4, 1, 28, 28) and images.abs().max() <= 1
    assert torch.equal(D.probability(images), torch.sigmoid(D(images)))      # D returns the logit


def test_short_training_writes_grids_checkpoints_and_metrics(trained):
    assert sorted(p.name for p in (trained / "samples").iterdir()) == [
        "iter_0000100.png", "iter_0000200.png", "iter_0000300.png"]
    assert Image.open(trained / "samples" / "iter_0000300.png").size[0] > 5 * 28
    assert (trained / "checkpoints" / "last.pt").is_file() and (trained / "losses.png").is_file()
    rows = list(csv.DictReader(open(trained / "metrics.csv")))
    assert [int(r["iteration"]) for r in rows] == [50, 100, 150, 200, 250, 300]
    # D tells real from generated better than a coin: a D that learned nothing scores ln 2 = 0.693
    mean = lambda key: sum(float(r[key]) for r in rows) / len(rows)     # noqa: E731
    assert mean("d_loss") < 0.68 and mean("d_real") > mean("d_fake"), rows
    assert json.loads((trained / "config.json").read_text())["latent_dim"] == 100


def test_samples_move_measurably_towards_mnist(trained, mnist_dir):
    """Mean-image distance to MNIST and the classifier's confidence, untrained vs 300 iterations."""
    real = mnist.load("mnist", "test", mnist_dir).images.float().div(127.5).sub(1)
    real_mean = real.mean(0)
    classifier, _ = load_classifier("mnist")
    z = torch.randn(1000, 100, generator=random_stream(7, 0))

    def stats(G):
        images = generate(G, z)[:, 0]
        distance = (images.mean(0) - real_mean).pow(2).mean().sqrt().item()
        with torch.no_grad():
            confidence = classifier(images).softmax(1).max(1).values.mean().item()
        return distance, confidence

    torch.manual_seed(0)
    untrained = stats(Generator(100))
    learned = stats(load_checkpoint(trained / "checkpoints" / "last.pt").model)
    assert learned[0] < 0.5 * untrained[0], (untrained, learned)
    assert learned[1] > untrained[1] + 0.1, (untrained, learned)


def test_resume_gives_identical_generator_weights(tmp_path, mnist_dir):
    cfg = short(data_dir=str(mnist_dir), max_iterations=40, save_interval=15, log_interval=10, ema_decay=0.9)
    train(cfg, tmp_path / "straight", progress=False)
    train({**cfg.__dict__, "max_iterations": 20}, tmp_path / "split", progress=False)
    train({"max_iterations": 40}, tmp_path / "split", resume=True, progress=False)
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)
    for part in ("generator", "discriminator", "model"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert (tmp_path / "straight" / "metrics.csv").read_text() == (tmp_path / "split" / "metrics.csv").read_text()


def test_sample_png_and_npy(trained, tmp_path):
    ckpt = trained / "checkpoints" / "last.pt"
    done = cli("gan", "sample", "--checkpoint", ckpt, "--out", tmp_path / "s.png")
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "s.png").size == Image.open(trained / "samples" / "iter_0000300.png").size
    done = cli("gan", "sample", "--checkpoint", ckpt, "--n", "7", "--out", tmp_path / "s.npy")
    assert done.returncode == 0, done.stderr
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (7, 28, 28) and arr.dtype == np.uint8 and arr.max() > 100


def test_interpolation_endpoints_are_the_generator_outputs(trained, tmp_path):
    from lstmgan.gan.sample import interpolate
    from lstmgan.plots import to_uint8

    ckpt = trained / "checkpoints" / "last.pt"
    for mode in ("lerp", "slerp"):
        images, steps, ends = interpolate(ckpt, steps=9, mode=mode, device="cpu")
        G = load_checkpoint(ckpt).model
        assert images.shape == (9, 28, 28) and steps == 9
        assert np.array_equal(images[0], to_uint8(generate(G, ends["z1"][None]))[0])
        assert np.array_equal(images[-1], to_uint8(generate(G, ends["z2"][None]))[0])
        assert not np.array_equal(images[4], images[0])
    done = cli("gan", "interpolate", "--checkpoint", ckpt, "--steps", "9", "--mode", "slerp",
               "--out", tmp_path / "row.png")
    assert done.returncode == 0, done.stderr
    width, height = Image.open(tmp_path / "row.png").size
    assert width > 8 * height


def test_slerp_keeps_the_gaussian_norm():
    from lstmgan.gan.sample import lerp, slerp

    z1, z2 = torch.randn(2, 100, generator=random_stream(3, 0))
    t = torch.linspace(0, 1, 9)
    assert torch.allclose(slerp(z1, z2, t)[[0, -1]], torch.stack([z1, z2]), atol=1e-5)
    assert slerp(z1, z2, t)[4].norm() > 0.95 * min(z1.norm(), z2.norm())
    assert lerp(z1, z2, t)[4].norm() < 0.8 * (z1.norm() + z2.norm()) / 2    # lerp cuts through the middle (~0.71)


def test_conditional_gan_samples_by_digit(tmp_path, mnist_dir):
    out = tmp_path / "cgan"
    train(short(data_dir=str(mnist_dir), conditional=True, max_iterations=30, save_interval=30), out,
          progress=False)
    ckpt = out / "checkpoints" / "last.pt"
    assert cli("gan", "sample", "--checkpoint", ckpt, "--digit", "3", "--out", tmp_path / "3.png").returncode == 0
    done = cli("gan", "sample", "--checkpoint", ckpt, "--out", tmp_path / "all.npy")
    assert done.returncode == 0 and np.load(tmp_path / "all.npy").shape == (100, 28, 28)
    done = cli("gan", "interpolate", "--checkpoint", ckpt, "--digit", "5", "--out", tmp_path / "i.npy")
    assert done.returncode == 0 and np.load(tmp_path / "i.npy").shape == (9, 28, 28)
    done = cli("gan", "sample", "--checkpoint", ckpt, "--digit", "10", "--out", tmp_path / "x.png")
    assert done.returncode == 2 and "0..9" in done.stderr and not (tmp_path / "x.png").exists()
    done = cli("gan", "evaluate", "--checkpoint", ckpt, "--n", "200", "--no-reference")
    scores = json.loads(done.stdout)
    assert len(scores["per_class_recall"]) == 10 and scores["min_class_recall"] == min(scores["per_class_recall"])
    assert len(scores["per_class_precision"]) == 10 and "conditional_accuracy" in scores


def test_evaluate_prints_metrics_with_the_real_floor(trained):
    done = cli("gan", "evaluate", "--checkpoint", trained / "checkpoints" / "last.pt", "--n", "500")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for key in ("fid", "inception_score", "precision", "recall", "class_histogram", "class_kl_to_uniform"):
        assert key in result and key in result["reference_real_data"]
    assert result["reference_real_data"]["fid"] < result["fid"]
    low, high = result["fid_ratio_band"]                      # 300 iterations: far from real data
    assert result["fid_ratio"] == pytest.approx(result["fid"] / result["fid_floor"]) and result["fid_ratio"] > high
    assert 0 <= result["copy_rate"] <= 1 and result["copy_calibrated_on"] == "val"     # 1% of validation images
    assert 0 < result["copy_rate_test"] < 0.02
    assert result["training_split"] == {"how": "stratified", "size": 10000, "seed": 0}
    assert result["classifier"]["test_accuracy"] >= 0.99


def test_lr_decay_changes_nothing_before_its_start_and_reaches_zero(tmp_path):
    from lstmgan.gan.train import lr_factor

    tiny = write_idx_set(write_idx_set(tmp_path / "tiny", 256), 64, split="test")   # 8 batches an epoch
    cfg = GANConfig(n_epochs=3, batch_size=32, lr_decay_from=1, save_interval=1000, log_interval=4,
                    snapshot_interval=1, device="cpu", data_dir=str(tiny), val_size=0)
    assert lr_factor(cfg, 9, 30, 10) == 1.0 and lr_factor(cfg, 20, 30, 10) == 0.5
    assert lr_factor(cfg, 30, 30, 10) == 0.0
    train(cfg, tmp_path / "decay", progress=False)
    train(GANConfig(**{**cfg.__dict__, "lr_decay_from": 0}), tmp_path / "constant", progress=False)
    load = lambda run, name: torch.load(run / "checkpoints" / name, weights_only=True)["generator"]  # noqa: E731
    for name, same in (("epoch_001.pt", True), ("epoch_003.pt", False)):
        a, b = load(tmp_path / "decay", name), load(tmp_path / "constant", name)
        assert all(torch.equal(a[k], b[k]) for k in a) == same, name


def test_discriminator_dropout_is_an_option_off_by_default(tmp_path):
    tiny = write_idx_set(write_idx_set(tmp_path / "tiny", 128), 64, split="test")
    weights = {}
    for rate in (0.3, 0.0):       # the same seed and data: only the dropout differs
        run = tmp_path / f"dropout{rate}"
        train(GANConfig(n_epochs=1, batch_size=32, save_interval=1000, device="cpu", data_dir=str(tiny),
                        d_dropout=rate, val_size=0), run, progress=False)
        assert json.loads((run / "config.json").read_text())["d_dropout"] == rate
        weights[rate] = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["discriminator"]
    # the trained D really dropped units: its weights differ from the run without dropout
    assert any(not torch.equal(weights[0.3][k], weights[0.0][k]) for k in weights[0.0])
    assert any(isinstance(m, torch.nn.Dropout) for m in Discriminator(dropout=0.3).modules())
    assert GANConfig().d_dropout == 0 and not any(isinstance(m, torch.nn.Dropout) for m in Discriminator().modules())


def test_best_checkpoint_is_the_lowest_fid_evaluation(tmp_path, monkeypatch):
    from lstmgan.gan.metrics import Scorer

    scripted = iter([50.0, 30.0, 40.0, 60.0, 60.0])            # FID per epoch (best: epoch 2), then the final
    monkeypatch.setattr(Scorer, "score_generator", lambda *a: {"fid": next(scripted)})
    tiny = write_idx_set(write_idx_set(tmp_path / "tiny", 128), 64, split="test")
    run = tmp_path / "best"
    train(GANConfig(n_epochs=4, batch_size=32, save_interval=1000, eval_interval=1, eval_samples=64,
                    snapshot_interval=1, device="cpu", data_dir=str(tiny), val_size=32), run, progress=False)
    load = lambda name: torch.load(run / "checkpoints" / name, weights_only=True)  # noqa: E731
    best, epoch_2 = load("best.pt"), load("epoch_002.pt")
    assert best["progress"] == epoch_2["progress"]
    assert all(torch.equal(best["model"][k], epoch_2["model"][k]) for k in best["model"])


def test_resume_refuses_an_option_the_saved_run_predates(tmp_path):
    from lstmgan.errors import UsageError
    from lstmgan.runs import Run, resolve_config

    old = {k: v for k, v in GANConfig(device="cpu").__dict__.items() if k != "lr_decay_from"}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(json.dumps(old))    # saved before --lr-decay-from existed
    with pytest.raises(UsageError, match="--lr-decay-from 50 differs from the run being resumed"):
        resolve_config(GANConfig, {"lr_decay_from": 50}, Run(tmp_path / "old"), True)
    assert resolve_config(GANConfig, {"lr_decay_from": 0}, Run(tmp_path / "old"), True).lr_decay_from == 0
