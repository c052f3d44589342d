"""D's options in training: R1, spectral norm with the hinge loss, DiffAugment, a two-time-scale rate, D's width
and steps, G's EMA warm-up and second EMA, and the cluster check. Each trains, is recorded in config.json, resumes
bit-identically, and is refused where it does not apply; off (the defaults), training is what it was."""

import json

import pytest
import torch
from torch import nn

from lstmgan.cli import main
from lstmgan.gan import GANConfig
from lstmgan.gan.architectures import REGISTRY, Architecture
from lstmgan.gan.clusters import pixel_kmeans
from lstmgan.gan.evaluate import evaluate_checkpoint
from lstmgan.gan.mnist import load, split_off_validation
from lstmgan.gan.train import ema_decay_at, r1_weight, set_learning_rates, train
from lstmgan.seeding import Stream, random_stream

from conftest import cli, write_idx_set

NEW_OPTIONS = ("loss", "r1_gamma", "r1_every", "spectral_norm", "diff_augment", "lr_d")
NEWER_OPTIONS = ("d_steps", "ema_rampup", "ema_slow_decay")       # issue 52 (and conv's d_width)
OPTIONS = {
    "r1": {"r1_gamma": 0.1, "r1_every": 2},
    "sngan": {"spectral_norm": True, "loss": "hinge", "b1": 0.0, "b2": 0.9, "conditional": True,
              "d_projection": True},
    "diff_augment": {"diff_augment": True},
    "lr_d": {"lr_d": 0.0004},
    "all_conv": {"arch": "conv", "g_width": 8, "clusters": 3, "d_projection": True, "spectral_norm": True,
                 "loss": "hinge", "r1_gamma": 1.0, "r1_every": 2, "diff_augment": True, "lr_d": 0.0001},
    "d_steps": {"d_steps": 2},
    "d_width": {"arch": "conv", "g_width": 8, "d_width": 8, "d_steps": 3},
    # the EMA's warm-up and a slower second EMA, scored in an evaluation after the resume (2 epochs of 4)
    "ema": {"ema_decay": 0.9, "ema_rampup": 0.05, "ema_slow_decay": 0.99, "n_epochs": 2, "val_size": 32,
            "eval_interval": 1, "eval_samples": 40},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return write_idx_set(write_idx_set(folder, 96), 64, split="test")


def tiny_run(data_dir, **options) -> dict:
    """6 iterations of batch 16 over 96 synthetic images (one epoch), a loss row every 2."""
    return {"n_epochs": 1, "batch_size": 16, "val_size": 0, "save_interval": 1000, "log_interval": 2,
            "snapshot_interval": 0, "device": "cpu", "data_dir": str(data_dir), **options}


def last(run) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


def same_weights(a: dict, b: dict, parts=("generator", "discriminator", "model")) -> bool:
    return all(a[p].keys() == b[p].keys() and all(torch.equal(a[p][k], b[p][k]) for k in a[p]) for p in parts)


@pytest.fixture(scope="module")
def default_run(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("default") / "run"
    train(tiny_run(data), run, progress=False)
    return run


@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_option_trains_is_recorded_and_resumes_bit_identically(name, data, default_run, tmp_path):
    options = OPTIONS[name]
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(tiny_run(data, **options), straight, progress=False)
    train(tiny_run(data, **options, max_iterations=3), split, progress=False)     # stopped after D step 3 ...
    train({"max_iterations": 0}, split, resume=True, progress=False)             # ... and continued
    a, b = last(straight), last(split)
    assert a["progress"]["iteration"] == b["progress"]["iteration"] > 3
    assert same_weights(a, b) and a["rng"].keys() == b["rng"].keys()
    assert a.keys() == b.keys() and all(same_weights(a, b, (p,)) for p in ("ema", "ema_slow") if p in a)
    assert all(torch.equal(a["rng"][k], b["rng"][k]) for k in a["rng"])
    assert (straight / "metrics.csv").read_text() == (split / "metrics.csv").read_text()
    recorded = json.loads((straight / "config.json").read_text())
    assert {k: recorded[k] for k in options} == options
    assert all(k in recorded for k in NEW_OPTIONS + NEWER_OPTIONS)
    if set(options) <= {"r1_gamma", "r1_every", "diff_augment", "lr_d", "d_steps"}:     # the default run's networks:
        assert not same_weights(a, last(default_run), ("discriminator",))        # the option changed D's training
    assert ("augment" in a["rng"]) == bool(options.get("diff_augment"))
    normed = [k for k in a["discriminator"] if k.endswith("parametrizations.weight.original")]
    if options.get("spectral_norm"):       # every layer of D, the projection embedding included
        assert any(k.startswith("class_projection.") for k in normed)
        assert not any(k.endswith(".weight") and "parametrizations" not in k for k in a["discriminator"])
    else:
        assert not normed


def test_diff_augment_transforms_real_then_generated_in_ds_step_and_generated_in_gs(data, tmp_path, monkeypatch):
    import lstmgan.gan.train as gan_train

    seen, augment = [], gan_train.diff_augment

    def recording(images, generator):
        seen.append((images.requires_grad, images.grad_fn is not None, generator.initial_seed()))
        return augment(images, generator)

    monkeypatch.setattr(gan_train, "diff_augment", recording)
    train(tiny_run(data, diff_augment=True, max_iterations=2), tmp_path / "run", progress=False)
    # per iteration: the real batch (no graph), G's images detached, then G's images with their graph
    assert [s[:2] for s in seen] == [(False, False), (False, False), (True, True)] * 2
    assert {s[2] for s in seen} == {random_stream(0, Stream.DIFF_AUGMENT).initial_seed()}   # never the noise's


def test_d_steps_step_g_on_every_kth_batch_only(data, tmp_path):
    train(tiny_run(data, d_steps=3), tmp_path / "k3", progress=False)
    state = last(tmp_path / "k3")
    assert state["progress"]["iteration"] == 6                      # an iteration is one D step
    assert [s["step"] for s in state["optimizer_G"]["state"].values()][0] == 2     # G stepped at 3 and 6
    assert [s["step"] for s in state["optimizer_D"]["state"].values()][0] == 6


def test_the_ema_warm_up_follows_g_early_and_reaches_its_decay():
    config = GANConfig(batch_size=64, ema_decay=0.999, ema_rampup=0.05)
    early, late = (ema_decay_at(0.999, config, it) for it in (1, 100_000))
    assert early < 1e-5 and late == pytest.approx(0.999)           # half-life in images: min(44,300, 5% seen)
    assert ema_decay_at(0.999, GANConfig(ema_decay=0.999), 1) == 0.999          # off: the decay from the start
    assert ema_decay_at(0.9999, config, 20_000) > ema_decay_at(0.999, config, 20_000)


def test_a_slower_ema_is_scored_beside_in_metrics_csv_and_the_snapshot_stays_the_first(data, tmp_path):
    ramped, plain = tmp_path / "ramped", tmp_path / "plain"
    train(tiny_run(data, **OPTIONS["ema"]), ramped, progress=False)
    train(tiny_run(data, **OPTIONS["ema"] | {"ema_rampup": 0.0}), plain, progress=False)
    evaluations = [row for row in metrics_rows(plain) if row["fid"]]
    assert len(evaluations) == 2 and all(float(row["fid_ema_slow"]) > 0 for row in evaluations)
    assert all(row["fid_ema_slow"] != row["fid"] for row in evaluations)
    # 8 steps of 16 images: under the warm-up both half-lives are 5% of the images seen, so both EMAs are one
    assert all(row["fid_ema_slow"] == row["fid"] for row in metrics_rows(ramped) if row["fid"])
    state = last(plain)
    assert same_weights({"model": state["model"]}, {"model": state["ema"]}, ("model",))      # what is kept


def test_r1_gamma_means_the_papers_gamma_for_either_loss():
    # lazy: weight γ/2 · k on each k-th step; the BCE D loss is the papers' sum halved, so its penalty is too
    assert r1_weight(GANConfig(r1_gamma=0.1, r1_every=2, loss="hinge")) == pytest.approx(0.1)
    assert r1_weight(GANConfig(r1_gamma=0.1, r1_every=2)) == pytest.approx(0.05)
    assert r1_weight(GANConfig(r1_gamma=1.0, r1_every=1)) == pytest.approx(0.25)


def test_lr_d_sets_ds_rate_and_the_decay_scales_both():
    G, D = nn.Linear(2, 2), nn.Linear(2, 2)
    opt_G, opt_D = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
    set_learning_rates(GANConfig(lr=0.0002, lr_d=0.0008), 0.5, opt_G, opt_D)
    assert opt_G.param_groups[0]["lr"] == 0.0001 and opt_D.param_groups[0]["lr"] == 0.0004
    set_learning_rates(GANConfig(lr=0.0002), 0.5, opt_G, opt_D)                  # 0: D at --lr, as before
    assert opt_G.param_groups[0]["lr"] == opt_D.param_groups[0]["lr"] == 0.0001


def test_a_run_saved_before_the_options_resumes_as_it_ran(data, default_run, tmp_path):
    assert {k: GANConfig.defaults()[k] for k in NEW_OPTIONS} == {
        "loss": "bce", "r1_gamma": 0.0, "r1_every": 16, "spectral_norm": False, "diff_augment": False, "lr_d": 0.0}
    split = tmp_path / "old"
    train(tiny_run(data, max_iterations=3), split, progress=False)
    checkpoint = last(split)
    checkpoint["config"] = {k: v for k, v in checkpoint["config"].items() if k not in NEW_OPTIONS}
    torch.save(checkpoint, split / "checkpoints" / "last.pt")
    train({"max_iterations": 0}, split, resume=True, progress=False)
    assert same_weights(last(split), last(default_run))
    assert (split / "metrics.csv").read_text() == (default_run / "metrics.csv").read_text()


def one_line_refusal(capsys, code: int, *words) -> None:
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err


class BorrowedFeaturesD(nn.Module):
    """A D with no layers of its own: a frozen feature layer and a trained scale."""

    def __init__(self):
        super().__init__()
        self.features = nn.Linear(784, 1).requires_grad_(False)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, images, labels=None):
        return self.scale * self.features(images.flatten(1))


def test_options_are_refused_in_one_line_where_they_do_not_apply(tmp_path, capsys, monkeypatch):
    done = cli("gan", "train", "--r1-gamma", "-0.1", "--out", tmp_path / "bad")
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert "--r1-gamma must be 0 or positive" in done.stderr
    mlp = REGISTRY["mlp"]
    monkeypatch.setitem(REGISTRY, "borrowed", Architecture("borrowed", "a frozen feature layer", mlp.generator,
                                                           lambda c: BorrowedFeaturesD()))
    for args, words in ((["--r1-gamma", "0.1", "--r1-every", "0"], ["--r1-every must be a positive integer"]),
                        (["--r1-every", "4"], ["--r1-every must be left at its default without --r1-gamma"]),
                        (["--loss", "wasserstein"], ["--loss must be one of bce, hinge"]),
                        (["--lr-d", "-1"], ["--lr-d must be 0 or positive"]),
                        (["--arch", "borrowed", "--spectral-norm"], ["--spectral-norm", "no layers of its own"]),
                        (["--d-steps", "0"], ["--d-steps must be a positive integer"]),
                        (["--ema-rampup", "0.05"], ["--ema-rampup must be used with --ema-decay"]),
                        (["--ema-decay", "0.999", "--ema-slow-decay", "0.99"],
                         ["--ema-slow-decay must be above --ema-decay 0.999"]),
                        (["--d-width", "32"], ["--d-width"])):
        one_line_refusal(capsys, main(["gan", "train", *args, "--out", str(tmp_path / "bad")]), *words)
    assert not (tmp_path / "bad").exists()
    GANConfig(arch="borrowed").validate()                                        # without spectral norm it runs
    GANConfig(spectral_norm=True, conditional=True).validate()


def test_cluster_mismatch_is_logged_in_training_and_reported_by_evaluate(data, default_run, tmp_path):
    run = tmp_path / "clusters"
    config = tiny_run(data, clusters=3, g_conditional_bn=True, val_size=32, eval_interval=1, eval_samples=40)
    summary = train(config, run, progress=False)
    evaluations = [row for row in metrics_rows(run) if row["fid"]]
    assert evaluations and all(0 <= float(row["cluster_mismatch"]) <= 1 for row in evaluations)
    share = summary["validation"]["cluster_mismatch"]
    assert 0 <= share <= 1
    # `gan evaluate` recomputes training's k-means (same part, same seed) and draws the same samples
    result = evaluate_checkpoint(run / "checkpoints" / "last.pt", n=40, seed=0, device="cpu", data_dir=data,
                                 reference=False, cluster_check=True)
    assert result["cluster_mismatch"] == share
    assert "cluster_mismatch" not in evaluate_checkpoint(run / "checkpoints" / "last.pt", n=40, seed=0,
                                                         device="cpu", data_dir=data, reference=False)
    assert sum(result["cluster_requested"]) == 40 and len(result["cluster_mismatched"]) == 3
    part = split_off_validation(load("mnist", "train", data), 32, "stratified", 0)[0]
    clusters = torch.bincount(pixel_kmeans(part.images, 3, 0)[0], minlength=3)
    assert torch.equal(last(run)["model"]["cluster_sizes"].to(clusters.dtype), clusters)   # the prior training set
    # without evaluations the summary still carries the check; a run without clusters has no such column
    quiet = train(tiny_run(data, clusters=3, g_conditional_bn=True), tmp_path / "quiet", progress=False)
    assert 0 <= quiet["cluster_mismatch"] <= 1
    assert "cluster_mismatch" not in metrics_rows(default_run)[0]


def metrics_rows(run) -> list[dict]:
    import csv

    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))
