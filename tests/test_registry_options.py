"""Acceptance (one source of truth): a model's options live in its registry entry, and everything follows."""

import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from lstmgan import load_checkpoint
from lstmgan.cli import main
from lstmgan.config import POSITIVE, named_option
from lstmgan.recurrent import REGISTRY, ModelSpec, register_model
from lstmgan.recurrent import sweep as palindrome_sweep
from lstmgan.recurrent.base import SequenceClassifier, as_sequence
from lstmgan.recurrent.config import PalindromeConfig
from lstmgan.recurrent.flops import StepFlops, product
from lstmgan.recurrent.registry import build_model
from lstmgan.recurrent.train import parameter_groups

from conftest import cli


class ScaledMeanReader(SequenceClassifier):
    """A toy model with an option of its own: logits from `scale` times the mean of a linear map of the inputs."""

    def __init__(self, input_dim, num_hidden, num_classes, scale):
        super().__init__()
        self.input_dim, self.num_hidden, self.num_classes, self.scale = input_dim, num_hidden, num_classes, scale
        self.W = nn.Parameter(torch.randn(num_hidden, input_dim) / input_dim ** 0.5)
        self.head = nn.Linear(num_hidden, num_classes)

    def forward(self, x):
        return self.head(self.scale * torch.tanh(as_sequence(x, self.input_dim) @ self.W.T).mean(1))


def mean_reader_flops(c) -> StepFlops:
    """W x_t at every position (the digits need no gradient), then the head on the mean."""
    return StepFlops(products=product(c.batch_size * c.input_length, c.num_hidden, c.input_dim, input_grad=False)
                     + product(c.batch_size, c.num_classes, c.num_hidden))


TOY_SCALE = named_option("toy_scale", 1.0, "the toy's read-out scale", POSITIVE, short="ts")


@pytest.fixture
def toy():
    spec = register_model(ModelSpec("toy", "Toy", lambda c: ScaledMeanReader(c.input_dim, c.num_hidden,
                                                                            c.num_classes, c.toy_scale),
                                    (TOY_SCALE,), flops=mean_reader_flops))
    yield spec
    del REGISTRY["toy"]


TINY = ["--input-length", "4", "--input-dim", "10", "--num-hidden", "8", "--data-size", "300", "--batch-size", "50",
        "--max-epoch", "2", "--device", "cpu", "--quiet"]


def one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert all(n in err for n in needles), err


def test_a_model_registered_with_its_own_option_gets_flag_validation_loading_sweep_table_and_refusals(
        tmp_path, toy, capsys):
    with pytest.raises(SystemExit):
        main(["palindrome", "train", "--help"])
    assert "--toy-scale" in capsys.readouterr().out                       # the CLI has its flag
    assert main(["palindrome", "train", "--model", "toy", "--toy-scale", "2.5", *TINY,
                 "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["toy_scale"] == 2.5
    loaded = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")  # checkpoint loading builds it back
    assert isinstance(loaded.model, ScaledMeanReader) and loaded.model.scale == 2.5
    capsys.readouterr()

    one_line_error(capsys, main(["palindrome", "train", "--model", "lstm", "--toy-scale", "2", *TINY,
                                 "--out", str(tmp_path / "no")]), "--toy-scale does not apply to --model lstm")
    one_line_error(capsys, main(["palindrome", "train", "--model", "toy", "--toy-scale", "-1", *TINY,
                                 "--out", str(tmp_path / "no")]), "--toy-scale must be positive")
    one_line_error(capsys, main(["palindrome", "inspect", "--checkpoint", str(tmp_path / "run" / "checkpoints" /
                                                                              "last.pt"),
                                 "--out", str(tmp_path / "fig.png")]), "has none")
    assert not (tmp_path / "no").exists() and not (tmp_path / "fig.png").exists()

    assert main(["palindrome", "sweep", "--models", "toy", "--lengths", "4", "--toy-scale", "1", "3", "--seeds", "0",
                 "1", *TINY[2:], "--out", str(tmp_path / "sweep")]) == 0
    rows = [line for line in (tmp_path / "sweep" / "results.md").read_text().splitlines() if line.startswith("| Toy")]
    assert len(rows) == 2 and "toy scale 1.0" in rows[0] and "toy scale 3.0" in rows[1]
    assert all("| 2 |" in row for row in rows)                            # two seeds pooled in each row
    assert sorted(p.name for p in (tmp_path / "sweep" / "runs").iterdir())[0] == "toy-T4-s0-ts1.0"


def test_every_help_names_every_registered_model(toy, capsys):
    for command in (["palindrome"], ["palindrome", "train"], ["palindrome", "sweep"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(name in text for name in REGISTRY), (command, text[:300])


def test_a_sweep_over_backends_keeps_them_apart(tmp_path):
    assert main(["palindrome", "sweep", "--models", "lstm", "--lengths", "4", "--backend", "compiled", "eager",
                 *TINY[2:], "--out", str(tmp_path / "sweep")]) == 0
    rows = [line for line in (tmp_path / "sweep" / "results.md").read_text().splitlines() if line.startswith("| LSTM")]
    assert len(rows) == 2 and "backend compiled" in rows[0] and "backend eager" in rows[1]


def test_sweep_resume_trains_only_the_missing_cells(tmp_path, monkeypatch):
    args = ["palindrome", "sweep", "--models", "lstm", "--lengths", "4", "5", "6", *TINY[2:], "--out",
            str(tmp_path / "sweep")]
    assert main(args) == 0
    runs = tmp_path / "sweep" / "runs"
    kept = {run.name: (run / "summary.json").stat().st_mtime_ns for run in runs.iterdir() if "T5" not in run.name}
    for path in sorted((runs / "lstm-T5-s0").rglob("*"), reverse=True):   # one cell lost (a stopped study)
        path.unlink() if path.is_file() else path.rmdir()
    trained = []

    def counting(config, run_dir, **kwargs):
        trained.append(run_dir)
        return palindrome_sweep.train(config, run_dir, **kwargs)
    monkeypatch.setattr(palindrome_sweep, "STUDY", replace(palindrome_sweep.STUDY, train=counting))
    assert main(args + ["--resume"]) == 0
    assert [p.rsplit("/", 1)[-1] for p in trained] == ["lstm-T5-s0"]
    assert {name: (runs / name / "summary.json").stat().st_mtime_ns for name in kept} == kept
    assert len((tmp_path / "sweep" / "results.csv").read_text().splitlines()) == 4


@pytest.mark.parametrize("args, message", [
    (["--model", "lstm", "--attention", "causal"], "--attention does not apply to --model lstm"),
    (["--model", "gru", "--lru-state", "8"], "--lru-state does not apply to --model gru"),
    (["--model", "rnn", "--forget-bias", "chrono"], "--forget-bias does not apply to --model rnn"),
    (["--model", "transformer", "--position", "none"], "--position none with --attention full"),
    (["--model", "transformer", "--position-range", "64"], "--position-range applies to --position random"),
    (["--model", "transformer", "--position", "random", "--position-range", "8", "--input-length", "9"],
     "exceeds --position-range"),
    (["--model", "lru", "--lru-r-max", "1"], "--lru-r-max must be in [0, 1)"),
    (["--model", "lru", "--lru-r-min", "0.99", "--lru-r-max", "0.95"], "r_min must be below r_max"),
    (["--model", "lru", "--lru-lr-factor", "0"], "--lru-lr-factor must be positive"),
    (["--data", "stream"], "--data"),
])
def test_options_of_the_fair_study_are_refused_with_one_line(tmp_path, args, message):
    done = cli("palindrome", "train", *args, "--out", tmp_path / "run")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "run").exists()


def test_the_lru_recurrence_learns_at_the_stated_factor():
    config = PalindromeConfig(model="lru", num_hidden=8, lru_state=12, lru_lr_factor=0.25, learning_rate=0.004)
    model = build_model(config)
    fast, slow = parameter_groups(model, config)
    assert "lr" not in fast and slow["lr"] == pytest.approx(0.001)
    assert {id(p) for p in slow["params"]} == {id(p) for p in model.recurrence_parameters()}
    assert len(fast["params"]) + len(slow["params"]) == len(list(model.parameters()))
    optimizer = torch.optim.Adam(parameter_groups(model, config), lr=config.learning_rate)
    assert [g["lr"] for g in optimizer.param_groups] == [0.004, 0.001]
    one = parameter_groups(model, replace_config(config, lru_lr_factor=1.0))
    assert len(one) == 1                                                  # 1.0: one group, as earlier runs had


def replace_config(config, **changes):
    return PalindromeConfig(**{**config.to_dict(), **changes})


def test_the_options_reach_the_models():
    gru = build_model(PalindromeConfig(model="gru", num_hidden=200, forget_bias="chrono", input_length=100))
    timescale = 1 + gru.b_z.detach().exp()                              # 1 / (1 − σ(b_z))
    assert timescale.min() < 3 and 50 < timescale.max() <= 100
    lru = build_model(PalindromeConfig(model="lru", num_hidden=8, lru_state=32, lru_r_min=0.99, lru_r_max=0.9999,
                                       lru_max_phase=0.314))
    for block in lru.blocks:
        radius = torch.exp(-torch.exp(block.lru.nu_log.detach()))
        phase = torch.exp(block.lru.theta_log.detach())
        assert radius.shape == (32,) and radius.min() >= 0.99 - 1e-6 and radius.max() <= 0.9999 + 1e-6
        assert phase.min() >= 0 and phase.max() <= 0.314 + 1e-6
    transformer = build_model(PalindromeConfig(model="transformer", num_hidden=8, num_heads=2, attention="causal",
                                               position="random", position_range=64))
    assert transformer.attention == "causal" and transformer.position_range == 64


TORCH_MODULES = {"LSTM": nn.LSTM, "VanillaRNN": nn.RNN, "GRU": nn.GRU}


@pytest.mark.parametrize("name", [n for n, spec in REGISTRY.items() if spec.from_torch])
def test_every_model_with_a_torch_twin_converts_from_it(name):
    """`ModelSpec.from_torch`: the registry says which models convert from torch's module, and they agree with it."""
    spec = REGISTRY[name]
    torch.manual_seed(0)
    kind = TORCH_MODULES[spec.from_torch.__self__.__name__]
    module = kind(3, 7, batch_first=True)
    head = nn.Linear(7, 10)
    ours = spec.from_torch(module, head)
    x = torch.randn(4, 9, 3)
    with torch.no_grad():
        assert torch.allclose(ours(x), head(module(x)[0][:, -1]), atol=1e-5)
    assert {n for n, s in REGISTRY.items() if s.from_torch} >= {"lstm", "rnn", "gru"}
