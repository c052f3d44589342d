"""Acceptance (a look inside): `palindrome inspect` draws and reports how a model holds the first digit."""

import json

import pytest
import torch
from PIL import Image
from torch import nn

from lstmgan.recurrent import REGISTRY, ModelSpec, register_model
from lstmgan.recurrent.base import RecurrentClassifier, as_sequence
from lstmgan.recurrent.flops import StepFlops
from lstmgan.recurrent.inspection import draw, explained_variance, inspect_sequence
from lstmgan.recurrent.palindrome import random_palindromes
from lstmgan.recurrent.train import PalindromeConfig, train

from conftest import cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small LSTM, RNN and GRU that learn T = 6 (and so carry the first digit)."""
    root = tmp_path_factory.mktemp("inspect")
    for model in ("lstm", "rnn", "gru"):
        train(PalindromeConfig(model=model, input_length=6, input_dim=10, num_hidden=24, data_size=4000,
                               batch_size=100, learning_rate=0.01, max_epoch=8, patience=1, device="cpu"),
              root / model, progress=False)
    return root


def test_explained_variance_is_one_for_a_digit_copy_and_zero_for_noise():
    torch.manual_seed(0)
    digits = torch.randint(10, (500,))
    values = torch.stack([digits.float(), torch.randn(500)], 1)
    r2 = explained_variance(values, digits, 10)
    assert r2[0] == pytest.approx(1.0) and r2[1] < 0.05


@pytest.mark.parametrize("model", ["lstm", "rnn", "gru"])
def test_inspect_writes_a_figure_and_the_numbers_behind_it(trained, tmp_path, model):
    checkpoint = trained / model / "checkpoints" / "last.pt"
    done = cli("palindrome", "inspect", "--checkpoint", checkpoint, "--input-length", "12", "--seed", "3",
               "--out", tmp_path / "fig.png", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    width, height = Image.open(tmp_path / "fig.png").size
    assert width > 1000 and height > 200
    assert result["model"] == model and result["input_length"] == 12 and result["trained_input_length"] == 6
    assert result["prediction"] == int(torch.tensor(result["probabilities"]).argmax())
    assert abs(sum(result["probabilities"]) - 1) < 1e-4
    state = "c" if model == "lstm" else "h"
    assert len(result["trace"]["t"]) == 12 and len(result["trace"][state]) == len(result["carriers"])
    # the model learned the task: its best carrier holds the digit at every step it was trained on
    assert result["carrier_min_r2"][0] > 0.5 and result["units_carrying"] >= 1
    assert len(result["decodability"]["t"]) == len(result["decodability"]["best_unit_r2"])
    gates = {"lstm": ("i", "f", "o"), "gru": ("r", "z")}.get(model, ("h",))
    assert set(result["saturation"]) == set(gates)
    for fractions in result["saturation"].values():
        assert all(0 <= a + b <= 1 + 1e-9 for a, b in zip(fractions["left"], fractions["right"]))
    if model == "lstm":
        assert len(result["trace"]["f"]) == len(result["carriers"]) and "forget_gate" in result
    if model == "gru":                                  # its update gate, the share of h it keeps, is traced
        assert len(result["trace"]["z"]) == len(result["carriers"]) and "r" not in result["trace"]


def test_the_grus_traced_states_are_the_ones_its_forward_reads():
    from lstmgan.recurrent.gru import GRU

    torch.manual_seed(0)
    model, x = GRU(3, 7, 10), torch.randn(4, 9, 3)
    states = model.states(x)
    assert states["h"].shape == states["z"].shape == (4, 9, 7)
    assert torch.allclose(states["h"][:, -1], model.final_state(x, "eager"), atol=1e-6)
    assert torch.equal(model.states(x, [2, 8])["h"], states["h"][:, [2, 8]])


@pytest.mark.parametrize("args, message", [
    (["--input-length", "0"], "--input-length must be a positive integer"),
    (["--checkpoint", "pretrained:mnist"], "this is a gan checkpoint"),
    (["--checkpoint", "{tmp}/garbage.pt"], "not a plain lstmgan checkpoint"),
    (["--out", "{tmp}/fig.jpg"], "must end in .png"),
])
def test_bad_inspect_input_is_one_line_exit_2(trained, tmp_path, args, message):
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    base = {"--checkpoint": str(trained / "lstm" / "checkpoints" / "last.pt"), "--out": str(tmp_path / "fig.png")}
    given = dict(zip(args[::2], [a.format(tmp=tmp_path) for a in args[1::2]]))
    flags = [item for pair in {**base, **given}.items() for item in pair]
    done = cli("palindrome", "inspect", *flags)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "fig.png").exists()


def test_inspect_draws_what_the_models_registry_entry_says(trained, tmp_path, monkeypatch):
    """The traced gates and the forget-gate summary come from the entry alone (no attribute or letter guessing)."""
    from dataclasses import replace

    from lstmgan.recurrent import REGISTRY
    from lstmgan.recurrent.inspection import inspect_to_figure

    monkeypatch.setitem(REGISTRY, "lstm", replace(REGISTRY["lstm"], traced_gates=("o",), forget_gate=None))
    result = inspect_to_figure(trained / "lstm" / "checkpoints" / "last.pt", tmp_path / "fig.png", 8, 0)
    assert set(result["trace"]) == {"t", "c", "o"} and "forget_gate" not in result
    monkeypatch.setitem(REGISTRY, "lstm", replace(REGISTRY["lstm"], traced_gates=("f",), forget_gate=("i", "b_i")))
    result = inspect_to_figure(trained / "lstm" / "checkpoints" / "last.pt", tmp_path / "fig.png", 8, 0)
    bias = torch.load(trained / "lstm" / "checkpoints" / "last.pt", weights_only=True)["model"]["b_i"]
    assert result["forget_gate"]["sigmoid_b_f_median"] == pytest.approx(float(torch.sigmoid(bias).median()),
                                                                        abs=1e-4)


class Leaky(RecurrentClassifier):
    """A toy gated memory with names of its own: m_t = k_t ⊙ m_{t-1} + (1 − k_t) ⊙ tanh(W_w x_t),
    k_t = σ(W_k x_t + b_keep)."""

    has_kernel = False

    def __init__(self, input_dim, num_hidden, num_classes):
        super().__init__(input_dim, num_hidden, num_classes, "auto")
        self.W_k, self.W_w = (nn.Parameter(torch.empty(num_hidden, input_dim)) for _ in range(2))
        self.b_keep = nn.Parameter(torch.empty(num_hidden))
        self.reset_parameters()

    def run(self, x):
        x = as_sequence(x, self.input_dim)
        k = torch.sigmoid(x @ self.W_k.T + self.b_keep)
        w, m, ms = torch.tanh(x @ self.W_w.T), x.new_zeros(x.shape[0], self.num_hidden), []
        for t in range(x.shape[1]):
            m = k[:, t] * m + (1 - k[:, t]) * w[:, t]
            ms.append(m)
        return {"m": torch.stack(ms, 1), "k": k, "w": w}

    @torch.no_grad()
    def states(self, x, steps=None):
        every = self.run(x)
        return every if steps is None else {name: v[:, list(steps)] for name, v in every.items()}

    def final_state(self, x, backend):
        return self.run(x)["m"][:, -1]


@pytest.fixture
def leaky_model():
    spec = register_model(ModelSpec("leaky", "Leaky", lambda c: Leaky(c.input_dim, c.num_hidden, c.num_classes),
                                    memory_state="m", gates=("k",), traced_gates=("k",), forget_gate=("k", "b_keep"),
                                    flops=lambda c: StepFlops(products=0)))
    yield spec
    del REGISTRY["leaky"]


def test_a_model_registered_in_a_test_is_inspected_by_its_entry(leaky_model, tmp_path):
    """The state, the traced gates and the forget bias are the ones the entry names, whatever they are called."""
    config = PalindromeConfig(model="leaky", input_length=6, input_dim=10, num_hidden=8, device="cpu")
    torch.manual_seed(0)
    model = leaky_model.build(config)
    result = inspect_sequence(model, config, random_palindromes(1, 6, 10, seed=0)[0])
    assert result["state"] == "m" and set(result["trace"]) == {"t", "m", "k"} and set(result["saturation"]) == {"k"}
    assert result["forget_gate"]["sigmoid_b_f_median"] == pytest.approx(
        float(torch.sigmoid(model.b_keep.detach()).median()), abs=1e-4)
    draw(result, tmp_path / "fig.png")
    assert (tmp_path / "fig.png").exists()
