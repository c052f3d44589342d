"""The fair study's model options: GRU update-gate init, LRU ring and learning-rate set, causal and randomised
transformers, and the fresh-data stream. Models are built directly; the defaults must keep today's init."""

import math
import time
import warnings

import pytest
import torch
import torch.nn.functional as F

from lstmgan.recurrent.gru import GRU
from lstmgan.recurrent.lru import LRU
from lstmgan.recurrent.palindrome import (
    DataSizeWarning,
    FreshPalindromes,
    fingerprints,
    make_palindrome_splits,
    num_palindromes,
    random_palindromes,
)
from lstmgan.recurrent.transformer import Transformer, random_positions


def rows(tensor):
    return {tuple(r) for r in tensor.tolist()}


def seeded(build, seed=0):
    torch.manual_seed(seed)
    return build()


# ---------------------------------------------------------------------------------------------- GRU


def test_a_gru_update_bias_only_sets_b_z_and_draws_the_rest_as_before():
    default = seeded(lambda: GRU(3, 16, 10))
    for model in (seeded(lambda: GRU(3, 16, 10, update_bias=2.5)), seeded(lambda: GRU(3, 16, 10, chrono_tmax=50))):
        for (name, p), q in zip(model.named_parameters(), default.parameters()):
            assert torch.equal(p, q) != (name == "b_z"), name     # every other parameter: the same draws
    assert torch.equal(seeded(lambda: GRU(3, 16, 10, update_bias=2.5)).b_z, torch.full((16,), 2.5))


def test_the_update_gate_is_the_share_of_the_old_state_kept():
    # z ≈ 1 everywhere: h_t = (1 − z) n + z h_{t−1} stays at h_0 = 0, so the logits are the head's bias
    model = seeded(lambda: GRU(1, 8, 10, update_bias=30.0))
    for backend in ("eager", "per-gate"):
        model.backend = backend
        torch.testing.assert_close(model(torch.randn(4, 6)), model.b_p.detach().expand(4, 10))


def test_chrono_init_spreads_the_gru_timescales_from_about_1_to_t_max():
    t_max = 100
    b_z = seeded(lambda: GRU(1, 1000, 10, chrono_tmax=t_max)).b_z.detach().double()
    assert b_z.min() >= 0 and b_z.max() <= math.log(t_max - 1) + 1e-6          # b_z ~ log U[1, T_max − 1]
    timescale = 1 / (1 - torch.sigmoid(b_z))                                    # = 1 + e^{b_z}, in [2, T_max]
    assert timescale.min() < 3 and timescale.max() > t_max / 2 and timescale.max() <= t_max + 1e-6
    assert timescale.mean().item() == pytest.approx((2 + t_max) / 2, rel=0.05)  # uniform over [2, T_max]


@pytest.mark.parametrize("kwargs", [{"chrono_tmax": 1}, {"chrono_tmax": 10, "update_bias": 1.0},
                                    {"update_bias": float("nan")}])
def test_bad_gru_init_settings_are_value_errors(kwargs):
    with pytest.raises(ValueError, match="chrono_tmax|update_bias"):
        GRU(**kwargs)


# ---------------------------------------------------------------------------------------------- LRU


@pytest.mark.parametrize("r_min, r_max, max_phase", [(0.9, 0.999, 2 * math.pi), (0.0, 0.5, math.pi / 10),
                                                     (0.3, 0.6, 1.0)])
def test_every_lru_eigenvalue_starts_on_the_ring(r_min, r_max, max_phase):
    model = seeded(lambda: LRU(num_hidden=8, num_layers=2, state_dim=500, r_min=r_min, r_max=r_max,
                               max_phase=max_phase))
    for block in model.blocks:
        lam = torch.exp(block.lru.log_lambda().detach().to(torch.complex128))
        assert r_min - 1e-6 <= lam.abs().min() and lam.abs().max() <= r_max + 1e-6
        phase = torch.exp(block.lru.theta_log.detach())                     # arg λ before wrapping
        assert 0 <= phase.min() and phase.max() <= max_phase + 1e-6


def test_the_lru_state_size_is_separate_from_the_width():
    model = seeded(lambda: LRU(input_dim=3, num_hidden=8, num_layers=1, state_dim=5))
    layer = model.blocks[0].lru
    assert (layer.width, layer.state_dim, model.state_dim) == (8, 5, 5)
    assert layer.B_re.shape == (5, 8) and layer.C_re.shape == (8, 5) and layer.nu_log.shape == (5,)
    assert model(torch.randn(2, 7, 3)).shape == (2, 10)
    assert seeded(lambda: LRU(num_hidden=8)).state_dim == 8                   # tied by default, as before


@pytest.mark.parametrize("kwargs, name", [({"r_min": -0.1}, "r_min"), ({"r_max": 1.0}, "r_max"),
                                          ({"r_min": 0.9, "r_max": 0.9}, "r_min"), ({"max_phase": 0.0}, "max_phase"),
                                          ({"max_phase": float("nan")}, "max_phase"), ({"state_dim": 0}, "state_dim")])
def test_bad_lru_settings_are_value_errors_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LRU(**kwargs)


def test_lru_recurrence_parameters_are_the_papers_reduced_learning_rate_set():
    model = seeded(lambda: LRU(num_hidden=8, num_layers=3, state_dim=4))
    recurrence = model.recurrence_parameters()
    names = {id(p): name for name, p in model.named_parameters()}
    assert sorted(names[id(p)].split(".")[-1] for p in recurrence) == sorted(
        ["nu_log", "theta_log", "gamma_log", "B_re", "B_im"] * 3)
    assert {names[id(p)].split(".")[1] for p in recurrence} == {"0", "1", "2"}   # every layer's
    others = [p for p in model.parameters() if all(p is not q for q in recurrence)]
    optimizer = torch.optim.Adam([{"params": others}, {"params": recurrence, "lr": 5e-4}], lr=1e-3)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


# ---------------------------------------------------------------------------------------------- transformer


@pytest.mark.parametrize("position", ["sinusoidal", "rope", "random", "none"])
def test_a_causal_position_never_depends_on_a_later_token(position):
    model = seeded(lambda: Transformer(input_dim=10, num_hidden=16, position=position, attention="causal")).eval()
    full = seeded(lambda: Transformer(input_dim=10, num_hidden=16, position=position)).eval()
    x = torch.randn(2, 9, 10)
    for t in (0, 4, 7):
        later = x.clone()
        later[:, t + 1:] = torch.randn(2, 8 - t, 10)
        torch.testing.assert_close(model.hidden_states(later)[:, :t + 1], model.hidden_states(x)[:, :t + 1])
        assert (full.hidden_states(later)[:, :t + 1] - full.hidden_states(x)[:, :t + 1]).abs().max() > 1e-3
    first = x.clone()
    first[:, 0] = torch.randn(2, 10)
    assert (model(first) - model(x)).abs().max() > 1e-4        # the read-out, at the last position, sees token 1
    torch.testing.assert_close(model(x), model.head(model.final_norm(model.hidden_states(x)[:, -1])))


def test_random_positions_are_sorted_distinct_samples_in_training_and_spread_in_evaluation():
    torch.manual_seed(0)
    drawn = [random_positions(10, 64, True, torch.device("cpu")) for _ in range(50)]
    for p in drawn:
        assert len(set(p.tolist())) == 10 and torch.equal(p, p.sort().values) and 0 <= p.min() and p.max() < 64
    assert len({tuple(p.tolist()) for p in drawn}) == 50                     # a new draw at every forward
    assert torch.cat(drawn).max() > 40                                      # beyond the training length
    assert random_positions(4, 10, False, torch.device("cpu")).tolist() == [0, 3, 6, 9]   # round(linspace(0, 9, 4))
    assert random_positions(1, 10, False, torch.device("cpu")).tolist() == [0]


def test_a_random_position_transformer_trained_at_t10_runs_at_t40():
    model = seeded(lambda: Transformer(input_dim=10, num_hidden=16, position="random", position_range=64))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train, _ = make_palindrome_splits(input_length=10, data_size=300, input_dim=10, seed=0)
    for step in range(3):
        x, y = train.batch(torch.arange(step * 50, step * 50 + 50))
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    x40 = F.one_hot(random_palindromes(8, 40)[:, :-1], 10).float()
    assert torch.isfinite(model(x40)).all() and model(x40).shape == (8, 10)    # training mode: drawn positions
    model.eval()
    torch.testing.assert_close(model(x40), model(x40), rtol=0, atol=0)       # evaluation: deterministic
    torch.manual_seed(1)
    a = model.train()(x40)
    torch.manual_seed(1)
    assert torch.equal(a, model(x40))                                        # training draws from the global RNG
    with pytest.raises(ValueError, match="position_range 64 must be >= T"):
        model(torch.zeros(1, 65, 10))
    with pytest.raises(ValueError, match="position_range 64 must be >= T"):
        model.eval()(torch.zeros(1, 65, 10))


# ---------------------------------------------------------------------------------------------- fresh data


def t5_splits(seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataSizeWarning)
        return make_palindrome_splits(input_length=5, data_size=100000, portion_train=0.8, input_dim=10, seed=seed)


def test_fresh_data_never_draws_a_test_palindrome():
    train, test = t5_splits()                                                # 1000 palindromes: 800 / 200
    stream = FreshPalindromes(test, input_length=5, input_dim=10, num_classes=10, seed=0)
    drawn = torch.cat([stream.sequences(step, 100) for step in range(100)])  # 10,000 sequences
    assert drawn.shape == (10_000, 6) and torch.equal(drawn, drawn.flip(1))
    assert not rows(drawn) & rows(test.sequences)
    assert rows(drawn) == rows(train.sequences)       # every other palindrome does come up: the check could fail
    x, y = stream.batch(3, 100)
    x_ref, y_ref = train.batch(torch.arange(100))
    assert (x.shape, x.dtype, y.shape, y.dtype) == (x_ref.shape, x_ref.dtype, y_ref.shape, y_ref.dtype)
    sequences = stream.sequences(3, 100)
    assert torch.equal(x.argmax(-1), sequences[:, :-1]) and torch.equal(y, sequences[:, -1])


def test_fresh_batches_are_a_function_of_seed_and_step():
    _, test = t5_splits()
    first, again = (FreshPalindromes(test, 5, 10, 10, seed=7) for _ in range(2))
    batches = [first.batch(step, 64) for step in range(6)]
    resumed = again.batch(5, 64)                                             # step 5 of a fresh stream, directly
    assert torch.equal(resumed[0], batches[5][0]) and torch.equal(resumed[1], batches[5][1])
    for step in range(6):
        assert torch.equal(again.batch(step, 64)[0], batches[step][0])
    assert not torch.equal(batches[0][0], batches[1][0])                    # a new batch at every step
    other = FreshPalindromes(test, 5, 10, 10, seed=8)
    assert not torch.equal(other.batch(0, 64)[0], batches[0][0])             # another seed, another stream


def test_fresh_data_is_fast_at_t1000():
    _, test = make_palindrome_splits(input_length=1000, data_size=2000, portion_train=0.5, input_dim=1, seed=0)
    stream = FreshPalindromes(test, 1000, 1, 10, seed=0)
    start = time.perf_counter()
    for step in range(10):
        x, y = stream.batch(step, 100)
    assert time.perf_counter() - start < 3.0                                 # ~25 ms: no per-sequence Python
    assert x.shape == (100, 1000, 1) and torch.equal(y, x[:, 0, 0].long())
    assert not rows(stream.sequences(0, 100)) & rows(test.sequences)


def test_fingerprints_tell_palindromes_apart_and_a_full_test_split_is_refused():
    every = random_palindromes(num_palindromes(5), 5)
    assert len(set(fingerprints(every).tolist())) == 1000                    # no collision among all of T = 5
    assert torch.equal(fingerprints(every), fingerprints(every.to(torch.uint8)))
    with pytest.raises(ValueError, match="none is left"):
        FreshPalindromes(every, 5)
    with pytest.raises(ValueError, match="length T \\+ 1 = 7"):
        FreshPalindromes(every, 6)
