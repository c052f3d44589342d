"""Acceptance: the compiled kernel is a set of registered torch operators (opcheck, torch.compile)."""

import pytest
import torch
import torch.nn.functional as F

from lstmgan.recurrent import LSTM, VanillaRNN, backends


@pytest.fixture(scope="module", autouse=True)
def kernel():
    backends.build_kernel()       # loads torch.ops.lstmgan and registers the autograd formulas and fakes


def lstm_inputs(gates=4, B=3, T=5, D=2, H=4, dtype=torch.float64, requires_grad=True):
    torch.manual_seed(0)
    shapes = [(B, T, D), (gates * H, D), (gates * H, H), (gates * H,)]
    return [torch.randn(*s, dtype=dtype, requires_grad=requires_grad) for s in shapes]


@pytest.mark.parametrize("D", [2, 20], ids=["folded-input", "input-gemm"])
@pytest.mark.parametrize("requires_grad", [True, False])
def test_opcheck_lstm_and_rnn_forward_and_inference(D, requires_grad):
    for name, gates in (("lstm", 4), ("rnn", 1)):
        args = lstm_inputs(gates, D=D, requires_grad=requires_grad)
        torch.library.opcheck(getattr(torch.ops.lstmgan, f"{name}_forward").default, args)
        torch.library.opcheck(getattr(torch.ops.lstmgan, f"{name}_inference").default,
                              [a.detach() for a in args])


@pytest.mark.parametrize("needs_grad_x", [True, False])
def test_opcheck_backward_operators(needs_grad_x):
    x, W_x, W_h, b = lstm_inputs(4, requires_grad=False)
    _, gates, cells, hiddens = torch.ops.lstmgan.lstm_forward(x, W_x, W_h, b)
    grad_h = torch.randn(x.shape[0], W_h.shape[1], dtype=x.dtype)
    torch.library.opcheck(torch.ops.lstmgan.lstm_backward.default,
                          (grad_h, x, W_x, W_h, gates, cells, hiddens, needs_grad_x))
    x, W_x, W_h, b = lstm_inputs(1, requires_grad=False)
    _, hiddens = torch.ops.lstmgan.rnn_forward(x, W_x, W_h, b)
    torch.library.opcheck(torch.ops.lstmgan.rnn_backward.default, (grad_h, x, W_x, W_h, hiddens, needs_grad_x))


def test_the_operators_take_non_contiguous_inputs():
    x, W_x, W_h, b = lstm_inputs(4, requires_grad=False)
    strided = x.transpose(0, 1).contiguous().transpose(0, 1)          # same values, time-major memory
    assert not strided.is_contiguous()
    assert torch.equal(torch.ops.lstmgan.lstm_inference(strided, W_x, W_h, b),
                       torch.ops.lstmgan.lstm_inference(x, W_x, W_h, b))


@pytest.mark.parametrize("bad, message", [
    (lambda g, x, W_x, W_h, s: (g[:, :2], x, W_x, W_h, *s), "grad_h must be"),
    (lambda g, x, W_x, W_h, s: (g, x, W_x, W_h, s[0][:-1], *s[1:]), "saved forward tensors do not match"),
    (lambda g, x, W_x, W_h, s: (g, x, W_x.float(), W_h, *s), "share one dtype"),
    (lambda g, x, W_x, W_h, s: (g, x, W_x[:, :1], W_h, *s), "weight shapes do not match"),
], ids=["grad-shape", "saved-shape", "dtype", "weights"])
def test_the_backward_operator_checks_its_inputs(bad, message):
    x, W_x, W_h, b = lstm_inputs(4, requires_grad=False)
    saved = torch.ops.lstmgan.lstm_forward(x, W_x, W_h, b)[1:]
    grad_h = torch.randn(x.shape[0], W_h.shape[1], dtype=x.dtype)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.lstmgan.lstm_backward(*bad(grad_h, x, W_x, W_h, saved), True)


@pytest.mark.parametrize("cls", [LSTM, VanillaRNN])
def test_torch_compile_of_a_model_with_our_recurrence_trains_like_eager(cls):
    torch.manual_seed(0)
    model = cls(input_dim=10, num_hidden=16, num_classes=10, backend="compiled")
    compiled = torch.compile(model, backend="aot_eager")   # traces through the operators' fakes and autograd
    x = F.one_hot(torch.randint(10, (8, 7)), 10).float()
    y = torch.randint(10, (8,))
    eager_loss = F.cross_entropy(model(x), y)
    eager_grads = torch.autograd.grad(eager_loss, list(model.parameters()))
    compiled_loss = F.cross_entropy(compiled(x), y)
    compiled_grads = torch.autograd.grad(compiled_loss, list(model.parameters()))
    assert torch.allclose(compiled_loss, eager_loss, atol=1e-6)
    for a, b in zip(compiled_grads, eager_grads):
        assert torch.allclose(a, b, atol=1e-6)
    with torch.no_grad():                                    # the inference operator under compile too
        assert torch.allclose(compiled(x), model(x), atol=1e-6)


def test_torch_compile_with_inductor_runs_the_lstm_in_one_graph():
    """The default compiler, whole-graph: no graph break around the kernel's operators."""
    torch.manual_seed(0)
    model = LSTM(input_dim=10, num_hidden=16, num_classes=10, backend="compiled")
    compiled = torch.compile(model, fullgraph=True)
    x = F.one_hot(torch.randint(10, (8, 7)), 10).float()
    y = torch.randint(10, (8,))
    loss = F.cross_entropy(compiled(x), y)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    assert all(torch.allclose(a, p.grad, atol=1e-5) for a, p in zip(grads, model.parameters()))
