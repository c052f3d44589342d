"""Acceptance: the from-scratch LSTM and RNN against torch.nn, per-gate vs fused, gradcheck."""

import pytest
import torch
from torch import nn

from lstmgan.recurrent import LSTM, VanillaRNN
from lstmgan.recurrent.backends import compiled_lstm, compiled_rnn
from lstmgan.recurrent.fused import LSTMFunction, RNNFunction

SEED_NAMES = ["W_gx", "W_gh", "b_g", "W_ix", "W_ih", "b_i", "W_fx", "W_fh", "b_f", "W_ox", "W_oh", "b_o",
              "W_ph", "b_p"]


def torch_reference(input_dim, hidden=16, classes=10, seed=0):
    torch.manual_seed(seed)
    return nn.LSTM(input_dim, hidden, batch_first=True), nn.Linear(hidden, classes)


BACKENDS = ["compiled", "eager", "per-gate"]


def gradients(model, x):
    """Logits, then the gradient of a generic loss for every parameter (in model order) and for x."""
    x = x.detach().clone().requires_grad_()
    out = model(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()] + [x.grad]


@pytest.mark.parametrize("batch", [1, 3, 100])
@pytest.mark.parametrize("hidden", [7, 33, 128])
@pytest.mark.parametrize("input_dim", [1, 10])
@pytest.mark.parametrize("T", [1, 2, 50])
def test_every_backend_matches_torch_lstm_in_value_and_every_gradient(batch, hidden, input_dim, T):
    lstm, head = torch_reference(input_dim, hidden)
    x = torch.randn(T, batch, input_dim).transpose(0, 1)            # non-contiguous [B, T, D]
    ref_out = head(lstm(x)[0][:, -1])
    _, expected = gradients(LSTM.from_torch(lstm, head, backend="per-gate"), x)   # autograd of the equations
    for backend in BACKENDS:
        ours = LSTM.from_torch(lstm, head, backend=backend)
        out, grads = gradients(ours, x)
        assert torch.allclose(out, ref_out, atol=1e-5), (backend, (out - ref_out).abs().max())
        for name, got, want in zip([n for n, _ in ours.named_parameters()] + ["x"], grads, expected):
            assert torch.allclose(got, want, atol=1e-5), (backend, name, (got - want).abs().max())


def test_weight_gradients_match_torch():
    lstm, head = torch_reference(10, hidden=32)
    ours = LSTM.from_torch(lstm, head)
    x, y = torch.randn(20, 9, 10), torch.randint(10, (20,))
    nn.functional.cross_entropy(head(lstm(x)[0][:, -1]), y).backward()
    nn.functional.cross_entropy(ours(x), y).backward()
    H = 32
    for k, gate in enumerate("ifgo"):     # torch's gate order
        rows = slice(k * H, (k + 1) * H)
        assert torch.allclose(getattr(ours, f"W_{gate}x").grad, lstm.weight_ih_l0.grad[rows], atol=1e-5)
        assert torch.allclose(ours.recurrent_weight(gate).grad, lstm.weight_hh_l0.grad[rows], atol=1e-5)
        assert torch.allclose(getattr(ours, f"b_{gate}").grad, lstm.bias_ih_l0.grad[rows], atol=1e-5)
    assert torch.allclose(ours.W_ph.grad, head.weight.grad, atol=1e-5)


def test_to_torch_round_trip():
    model = LSTM(input_dim=10, num_hidden=24, num_classes=10)
    lstm, head = model.to_torch()
    x = torch.randn(5, 11, 10)
    assert torch.allclose(head(lstm(x)[0][:, -1]), model(x), atol=1e-5)
    back = LSTM.from_torch(lstm, head)
    for name in SEED_NAMES:
        assert torch.allclose(getattr(back, name), getattr(model, name), atol=1e-7), name


def test_seed_parameter_names_and_shapes():
    model = LSTM(input_dim=1, num_hidden=128, num_classes=10)
    names = dict(model.named_parameters())
    assert sorted(names) == sorted(SEED_NAMES)
    assert names["W_gx"].shape == (128, 1) and names["W_ih"].shape == (128, 128)
    assert names["W_ph"].shape == (10, 128) and names["b_p"].shape == (10,)


def test_per_gate_and_fused_forms_agree_in_value_and_gradient():
    model = LSTM(input_dim=10, num_hidden=20, num_classes=10, forget_bias=1.0)
    x = torch.randn(7, 13, 10)
    fused = model.forward_fused(x)
    fused.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    per_gate = model.forward_per_gate(x)
    per_gate.sum().backward()
    assert torch.allclose(fused, per_gate, atol=1e-6)
    for name, grad in grads.items():
        assert torch.allclose(grad, getattr(model, name).grad, atol=1e-5), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_inference_path_equals_training_path(backend):
    model = LSTM(input_dim=1, num_hidden=16, backend=backend)
    x = torch.randn(4, 12)          # [B, T] is accepted when input_dim == 1
    with_grad = model(x)
    with torch.no_grad():
        without = model(x)
    assert torch.allclose(with_grad, without, atol=1e-6)


@pytest.mark.parametrize("function", [LSTMFunction.apply, compiled_lstm], ids=["eager", "compiled"])
def test_gradcheck_lstm_float64(function):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 2, dtype=torch.float64, requires_grad=True)
    W_x = torch.randn(4 * 4, 2, dtype=torch.float64, requires_grad=True)
    W_h = torch.randn(4 * 4, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4 * 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(function, (x, W_x, W_h, b))


@pytest.mark.parametrize("function", [RNNFunction.apply, compiled_rnn], ids=["eager", "compiled"])
def test_gradcheck_rnn_float64(function):
    torch.manual_seed(0)
    x = torch.randn(3, 6, 2, dtype=torch.float64, requires_grad=True)
    W_x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    W_h = torch.randn(4, 4, dtype=torch.float64, requires_grad=True) * 0.5
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(function, (x, W_x, W_h.detach().requires_grad_(), b))


@pytest.mark.parametrize("T", [1, 8])
@pytest.mark.parametrize("backend", BACKENDS)
def test_vanilla_rnn_matches_torch_rnn(T, backend):
    torch.manual_seed(1)
    rnn, head = nn.RNN(10, 33, batch_first=True), nn.Linear(33, 10)
    ours = VanillaRNN.from_torch(rnn, head, backend=backend)
    x = torch.randn(5, T, 10)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref, out = head(rnn(x_ref)[0][:, -1]), ours(x_ours)
    ref.sum().backward()
    out.sum().backward()
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(x_ours.grad, x_ref.grad, atol=1e-5)
    assert torch.allclose(ours.W_hh.grad, rnn.weight_hh_l0.grad, atol=1e-5)
    assert torch.allclose(ours.W_hx.grad, rnn.weight_ih_l0.grad, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_batch_size_in_the_model(backend):
    """Any batch size runs, and each row's logits are those of that sequence run alone."""
    torch.manual_seed(0)
    model = LSTM(input_dim=1, num_hidden=8, backend=backend)
    for batch in (1, 2, 1000):
        x = torch.randn(batch, 5, 1)
        logits = model(x)
        assert logits.shape == (batch, 10)
        for row in {0, batch // 2, batch - 1}:
            assert torch.allclose(logits[row], model(x[row:row + 1])[0], atol=1e-5)


def test_forward_returns_logits_and_predict_proba_normalises():
    model = LSTM(input_dim=1, num_hidden=8)
    x = torch.randn(6, 4, 1)
    logits = model(x)
    assert not torch.allclose(logits.sum(1), torch.ones(6))       # not already a softmax
    probs = model.predict_proba(x)
    assert torch.allclose(probs.sum(1), torch.ones(6)) and torch.allclose(probs, logits.softmax(1))


def test_init_is_uniform_like_torch_and_forget_bias_option():
    torch.manual_seed(0)
    model = LSTM(input_dim=1, num_hidden=64)
    bound = 64 ** -0.5
    values = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert values.abs().max() <= bound
    # uniform on [-bound, bound]: it reaches both ends, and its spread is bound / √3 (not zeros, not constants)
    assert values.min() < -0.99 * bound and values.max() > 0.99 * bound
    assert abs(values.std().item() - bound / 3 ** 0.5) < 0.02 * bound and abs(values.mean().item()) < 0.02 * bound
    assert torch.equal(LSTM(num_hidden=64, forget_bias=1.0).b_f, torch.ones(64))


def test_bad_input_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="expected input"):
        LSTM(input_dim=10)(torch.randn(2, 5, 3))
