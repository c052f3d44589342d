"""Acceptance: the compiled kernel is a set of registered torch operators (opcheck, torch.compile)."""

from pathlib import Path

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


# ---------------------------------------------------------------- checkpointed BPTT

@pytest.mark.parametrize("D", [10, 20], ids=["folded-input", "input-gemm"])
@pytest.mark.parametrize("T, k", [(23, 5), (23, 1), (23, 23), (23, 40), (6, 2)],
                         ids=["T-not-a-multiple", "k=1", "k=T", "k>T", "T-a-multiple"])
def test_checkpointed_bptt_matches_the_unsegmented_kernel_and_torch_lstm(D, T, k):
    torch.manual_seed(T + k + D)
    lstm, head = torch.nn.LSTM(D, 16, batch_first=True), torch.nn.Linear(16, 10)
    x = torch.randn(7, T, D)
    grads = {}
    for name in ("torch", "unsegmented", "checkpointed"):
        xi = x.clone().requires_grad_()
        if name == "torch":
            model, logits = None, head(lstm(xi)[0][:, -1])
        else:
            model = LSTM.from_torch(lstm, head, backend="compiled")
            model.bptt_segment = k if name == "checkpointed" else None
            logits = model(xi)
        (logits * torch.arange(10.0)).sum().backward()
        params = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, head.weight] if model is None else \
            [torch.cat([getattr(model, f"W_{g}x").grad for g in "ifgo"]),
             torch.cat([getattr(model, f"W_{g}h").grad for g in "ifgo"]),
             torch.cat([getattr(model, f"b_{g}").grad for g in "ifgo"]), model.W_ph.grad]
        grads[name] = [logits.detach(), xi.grad] + [p.grad if model is None else p for p in params]
    for reference in ("torch", "unsegmented"):
        for a, b in zip(grads["checkpointed"], grads[reference]):
            assert torch.allclose(a, b, atol=1e-5), reference


def test_checkpointed_bptt_gradcheck_float64():
    x, W_x, W_h, b = lstm_inputs(4, T=7)
    for k in (1, 3, 7):
        assert torch.autograd.gradcheck(lambda *a: torch.ops.lstmgan.lstm_forward_checkpointed(*a, k)[0],
                                        (x, W_x, W_h, b))


@pytest.mark.parametrize("D", [2, 20])
def test_opcheck_checkpointed_operators(D):
    args = lstm_inputs(4, D=D, T=7)
    torch.library.opcheck(torch.ops.lstmgan.lstm_forward_checkpointed.default, (*args, 3))
    x, W_x, W_h, b = [a.detach() for a in args]
    _, saved_c, saved_h = torch.ops.lstmgan.lstm_forward_checkpointed(x, W_x, W_h, b, 3)
    grad_h = torch.randn(x.shape[0], W_h.shape[1], dtype=x.dtype)
    for needs_grad_x in (True, False):
        torch.library.opcheck(torch.ops.lstmgan.lstm_backward_checkpointed.default,
                              (grad_h, x, W_x, W_h, b, saved_c, saved_h, 3, needs_grad_x))


MEMORY_PROBE = """
import sys, torch
from lstmgan.recurrent import LSTM
torch.set_num_threads(1)
model = LSTM(input_dim=1, num_hidden=64, backend="compiled")
T = int(sys.argv[1])
x = torch.randn(20, T)
with torch.no_grad():
    model(x[:, :10])                                   # kernel loaded, allocator warm
    open("/proc/self/clear_refs", "w").write("5")      # reset the resident-set high-water mark
    before = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
    model(x)
    after = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print((after - before) / 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc high-water mark")
def test_inference_memory_does_not_grow_with_T():
    """Scoring at T = 20,000 needs no more memory than at T = 200 beyond the input itself (20 x T floats)."""
    import subprocess
    import sys
    rise = {}
    for T in (200, 20000):
        done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(T)], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        rise[T] = float(done.stdout)
    # storing the states of 20,000 steps would take 20 x 20,000 x 64 x 4 bytes x (c, h, 4 gates) ≈ 600 MB
    assert rise[20000] - rise[200] < 10, rise
