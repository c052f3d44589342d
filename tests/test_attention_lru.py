"""Acceptance: the transformer and the LRU — shapes, positions, the recurrence against a slow reference, learning."""

import cmath
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from lstmgan.recurrent import make_palindrome_splits
from lstmgan.recurrent.lru import LRU, LRULayer, chunked_scan, loop_scan
from lstmgan.recurrent.transformer import POSITIONS, Transformer, rotate

MODELS = {
    "transformer-sinusoidal": lambda **kw: Transformer(position="sinusoidal", **kw),
    "transformer-rope": lambda **kw: Transformer(position="rope", **kw),
    "transformer-none": lambda **kw: Transformer(position="none", **kw),
    "transformer-causal": lambda **kw: Transformer(attention="causal", **kw),
    "lru": LRU,
}


def tiny(name, input_dim=10, **kw):
    return MODELS[name](input_dim=input_dim, num_hidden=8, num_layers=2, **kw)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("T", [1, 6])
def test_each_row_is_classified_as_if_alone(name, T):
    torch.manual_seed(0)
    model = tiny(name)
    x = torch.randn(5, T, 10)
    logits = model(x)
    assert logits.shape == (5, 10)
    for row in range(5):
        alone = model(x[row:row + 1])
        assert alone.shape == (1, 10)
        torch.testing.assert_close(logits[row:row + 1], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.predict_proba(x).sum(-1), torch.ones(5))
    assert (model.input_dim, model.num_hidden, model.num_classes, model.num_layers) == (10, 8, 10, 2)
    assert "num_hidden=8" in repr(model)


@pytest.mark.parametrize("name", MODELS)
def test_scalar_digits_come_as_batch_by_time(name):
    torch.manual_seed(0)
    model = tiny(name, input_dim=1)
    x = torch.randint(10, (4, 7)).float()
    torch.testing.assert_close(model(x), model(x.unsqueeze(-1)))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", [(4, 7), (4, 7, 3), (4, 0, 10), (7, 10)])
def test_a_badly_shaped_input_is_a_value_error(name, shape):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="expected input|at least one time step"):
        tiny(name)(torch.zeros(shape))


@pytest.mark.parametrize("name", MODELS)
def test_default_sizes_are_comparable_to_the_lstm(name):
    torch.manual_seed(0)
    count = sum(p.numel() for p in MODELS[name](input_dim=10).parameters())
    assert 35_000 <= count <= 145_000, count


# ---------------------------------------------------------------------------------------------- transformer


def test_without_positions_the_last_output_ignores_the_order_of_the_others():
    torch.manual_seed(0)
    x = torch.randn(3, 9, 10)
    shuffled = torch.cat([x[:, torch.randperm(8)], x[:, -1:]], 1)     # permute positions 1..T−1, keep T
    for position in POSITIONS:   # in eval mode, so "random" places the tokens at the same positions both times
        model = Transformer(input_dim=10, num_hidden=8, num_layers=2, position=position).eval()
        change = (model(x) - model(shuffled)).abs().max().item()
        if position == "none":
            assert change < 1e-5, change
        else:
            assert change > 1e-3, (position, change)


def test_rope_scores_depend_only_on_the_relative_offset():
    torch.manual_seed(0)
    q, k = torch.randn(2, 1, 16, dtype=torch.float64).unbind()

    def score(m, n):
        return (rotate(q, torch.tensor([m])) * rotate(k, torch.tensor([n]))).sum().item()

    for m, n in [(0, 0), (3, 1), (1, 3), (5, 17)]:
        for shift in (1, 7, 1000):
            assert score(m, n) == pytest.approx(score(m + shift, n + shift), abs=1e-9), (m, n, shift)
    assert score(0, 0) == pytest.approx((q * k).sum().item())                 # no rotation at position 0
    assert abs(score(3, 1) - score(1, 3)) > 1e-3                              # the offset's sign matters
    torch.testing.assert_close(rotate(q, torch.tensor([9])).norm(), q.norm())  # a rotation keeps lengths


def test_bad_transformer_settings_are_value_errors():
    with pytest.raises(ValueError, match="sinusoidal, rope, random, none"):
        Transformer(position="learned")
    with pytest.raises(ValueError, match="full, causal"):
        Transformer(attention="local")
    with pytest.raises(ValueError, match="position_range"):
        Transformer(position="random", position_range=0)
    with pytest.raises(ValueError, match="divisible"):
        Transformer(num_hidden=10, num_heads=4)
    with pytest.raises(ValueError, match="even"):
        Transformer(num_hidden=12, num_heads=4, position="rope")


def gradcheck_model(model, x):
    """Check d logits / d (x and every parameter) in float64 against finite differences."""
    names = [name for name, _ in model.named_parameters()]

    def logits(x, *params):
        return functional_call(model, dict(zip(names, params)), (x,))

    params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    assert torch.autograd.gradcheck(logits, (x.requires_grad_(), *params))


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("attention", ["full", "causal"])
def test_transformer_gradients_match_finite_differences(position, attention):
    torch.manual_seed(0)
    model = Transformer(input_dim=2, num_hidden=4, num_classes=3, num_layers=1, num_heads=2, position=position,
                        attention=attention)
    gradcheck_model(model.double().eval(), torch.randn(2, 3, 2, dtype=torch.float64))   # eval: fixed positions


# ---------------------------------------------------------------------------------------------- LRU


def python_lru(layer, u):
    """y [T][H] of one sequence u [T][H] by the paper's equations, one complex number at a time."""
    nu_log, theta_log, gamma_log, D = (p.tolist() for p in (layer.nu_log, layer.theta_log, layer.gamma_log, layer.D))
    lam = [cmath.exp(complex(-math.exp(nu), math.exp(theta))) for nu, theta in zip(nu_log, theta_log)]
    B = [[complex(re, im) for re, im in zip(*rows)] for rows in zip(layer.B_re.tolist(), layer.B_im.tolist())]
    C = [[complex(re, im) for re, im in zip(*rows)] for rows in zip(layer.C_re.tolist(), layer.C_im.tolist())]
    N, H = len(lam), len(D)
    x, ys = [0j] * N, []
    for u_k in u:
        x = [lam[n] * x[n] + math.exp(gamma_log[n]) * sum(B[n][h] * u_k[h] for h in range(H)) for n in range(N)]
        ys.append([sum(C[h][n] * x[n] for n in range(N)).real + D[h] * u_k[h] for h in range(H)])
    return ys


@pytest.mark.parametrize("scan", ["loop", "chunked"])
def test_lru_layer_matches_the_equations_one_complex_number_at_a_time(scan):
    torch.manual_seed(0)
    layer = LRULayer(width=3, state_dim=5)
    u = torch.randn(2, 7, 3)
    y = layer(u, scan)
    for row in range(2):
        expected = torch.tensor(python_lru(layer, u[row].tolist()))
        torch.testing.assert_close(y[row].detach(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("T", [1, 2, 50, 1000])
def test_loop_and_chunked_scans_agree_in_value_and_gradient(T):
    torch.manual_seed(0)
    model = LRU(input_dim=3, num_hidden=6, state_dim=5, r_min=0.5, r_max=0.999)
    x = torch.randn(2, T, 3)
    results = {}
    for scan in ("loop", "chunked"):
        model.scan = scan
        model.zero_grad()
        logits = model(x)
        logits.square().sum().backward()
        results[scan] = [logits.detach()] + [p.grad.clone() for p in model.parameters()]
    for loop, chunked in zip(results["loop"], results["chunked"]):
        torch.testing.assert_close(chunked, loop, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("T", [1, 2, 50, 1000])
@pytest.mark.parametrize("chunk", [2, 3, 7, 16])
def test_chunked_scan_matches_the_loop_whatever_the_chunk(T, chunk):
    torch.manual_seed(0)
    log_lambda = LRULayer(width=1, state_dim=6, r_min=0.5).log_lambda().detach()
    inputs = torch.randn(2, T, 6, dtype=torch.complex64)
    torch.testing.assert_close(chunked_scan(log_lambda, inputs, chunk), loop_scan(log_lambda, inputs),
                               atol=1e-4, rtol=1e-4)


def test_chunked_scan_stays_exact_over_100000_steps():
    # constant input 1: x_k = Σ_{j<k} Λ^j = (1 − Λ^k) / (1 − Λ); |λ| = 0.5 would overflow any Λ^{−k} by k ≈ 150
    T = 100_000
    log_lambda = torch.complex(torch.tensor([0.5, 0.9, 0.999, 0.99999]).log(), torch.tensor([3.0, 0.5, 2.0, 5.0]))
    log_lambda = log_lambda.to(torch.complex128)
    k = torch.arange(1, T + 1, dtype=torch.float64)[:, None]
    exact = (1 - torch.exp(k * log_lambda)) / (1 - torch.exp(log_lambda))
    states = chunked_scan(log_lambda, torch.ones(1, T, 4, dtype=torch.complex128))[0]
    torch.testing.assert_close(states, exact, atol=1e-9, rtol=1e-9)
    # in float32 the phase k·θ carries a relative error ~1e-7 · k, as the loop's repeated products do
    states = chunked_scan(log_lambda.to(torch.complex64), torch.ones(1, T, 4, dtype=torch.complex64))[0]
    assert torch.isfinite(states).all()
    assert ((states - exact).abs().amax(0) / exact.abs().amax(0) < torch.tensor([1e-6, 1e-6, 1e-4, 1e-2])).all()


def test_chunks_must_shorten_the_sequence():
    with pytest.raises(ValueError, match="chunk >= 2"):
        chunked_scan(torch.zeros(3, dtype=torch.complex64), torch.zeros(1, 5, 3, dtype=torch.complex64), chunk=1)


def test_an_unknown_scan_or_ring_is_a_value_error():
    with pytest.raises(ValueError, match="auto, chunked, loop"):
        LRU(scan="parallel")
    with pytest.raises(ValueError, match="r_max must be < 1"):
        LRU(r_min=0.5, r_max=1.0)


def test_ring_init_and_gamma_normalisation():
    torch.manual_seed(0)
    layer = LRULayer(width=4, state_dim=2000, r_min=0.4, r_max=0.9, max_phase=math.pi / 3)
    lam = torch.exp(layer.log_lambda().detach())
    radius, phase = lam.abs(), torch.exp(layer.theta_log.detach())
    assert radius.min() >= 0.4 - 1e-6 and radius.max() <= 0.9 + 1e-6
    assert radius.min() < 0.41 and radius.max() > 0.89                        # the whole ring is used
    assert phase.min() >= 0 and phase.max() <= math.pi / 3 + 1e-6 and phase.max() > math.pi / 3 - 0.01
    # uniform over the ring's area: |λ|² is uniform on [r_min², r_max²], so its mean is the midpoint
    assert radius.square().mean().item() == pytest.approx((0.4 ** 2 + 0.9 ** 2) / 2, abs=0.01)
    torch.testing.assert_close(torch.exp(layer.gamma_log.detach()), torch.sqrt(1 - radius.square()))


@pytest.mark.parametrize("scan", ["loop", "chunked"])
def test_lru_gradients_match_finite_differences(scan):
    torch.manual_seed(0)
    model = LRU(input_dim=2, num_hidden=3, num_classes=3, num_layers=1, state_dim=4, r_min=0.5, scan=scan)
    gradcheck_model(model.double(), torch.randn(2, 20, 2, dtype=torch.float64))   # 20 > one chunk of 16


# ---------------------------------------------------------------------------------------------- learning


@pytest.mark.parametrize("name", ["transformer-sinusoidal", "transformer-rope", "transformer-causal", "lru"])
def test_learns_the_palindrome_task(name):
    """T = 10, one-hot digits, batch 100, Adam at 3e-3: each model passes 99% held out in ~20-50 steps."""
    torch.manual_seed(0)
    train, test = make_palindrome_splits(input_length=10, data_size=3000, portion_train=0.8, input_dim=10, seed=0)
    held_out_x, held_out_y = test.batch(torch.arange(len(test)))
    model = MODELS[name](input_dim=10)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    accuracy = 0.0
    for step in range(1, 301):
        x, y = train.batch(torch.randint(len(train), (100,)))
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if step % 10 == 0:
            accuracy = (model.predict_proba(held_out_x).argmax(-1) == held_out_y).float().mean().item()
            if accuracy >= 0.99:
                return
    pytest.fail(f"{name} reached only {accuracy:.3f} held-out accuracy in 300 steps")
