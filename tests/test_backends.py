"""Acceptance (compiled kernel): backends agree in training, are deterministic, and fall back cleanly."""

import json

import pytest
import torch
import torch.nn.functional as F

from lstmgan.recurrent import LSTM, VanillaRNN, backends

from conftest import cli


def train_steps(model, steps=20, T=10, seed=0):
    """`steps` Adam steps with clipping on fixed random palindrome-like batches; returns the final weights."""
    data = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        x = F.one_hot(torch.randint(10, (32, T), generator=data), 10).float()
        y = torch.randint(10, (32,), generator=data)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("cls", [LSTM, VanillaRNN])
def test_twenty_steps_compiled_and_eager_end_within_1e_4(cls):
    torch.manual_seed(0)
    start = cls(10, 32, 10).state_dict()
    results = {}
    for backend in ("compiled", "eager"):
        model = cls(10, 32, 10, backend=backend)
        model.load_state_dict(start)
        results[backend] = train_steps(model)
    assert any(not torch.equal(results["eager"][k], start[k]) for k in start)      # training moved the weights
    for k in start:
        assert torch.allclose(results["compiled"][k], results["eager"][k], atol=1e-4), k


def test_compiled_training_is_bit_identical_for_the_same_seed_and_threads():
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        runs.append(train_steps(LSTM(10, 64, 10, backend="compiled"), T=12))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_auto_uses_the_compiled_kernel_on_the_cpu():
    assert backends.resolved_name("auto", torch.device("cpu")) == "compiled"
    assert backends.resolved_name("auto", torch.device("cpu"), torch.float16) == "eager"


def no_kernel_env():
    # CI sets LSTMGAN_REQUIRE_KERNEL; these tests are about the fallback, so they clear it
    return {"LSTMGAN_NO_KERNEL": "1", "LSTMGAN_REQUIRE_KERNEL": ""}


def test_without_a_kernel_auto_warns_once_and_trains_eager(tmp_path):
    out = tmp_path / "run"
    done = cli("palindrome", "train", "--input-length", "4", "--data-size", "300", "--max-epoch", "2",
               "--num-hidden", "8", "--out", out, "--quiet", env=no_kernel_env())
    assert done.returncode == 0, done.stderr
    warning = [line for line in done.stderr.splitlines() if "kernel unavailable" in line]
    assert len(warning) == 1 and "LSTMGAN_NO_KERNEL" in warning[0] and "eager" in warning[0]
    assert json.loads((out / "config.json").read_text())["resolved_backend"] == "eager"
    assert "backend eager" in done.stdout


def test_without_a_kernel_the_compiled_backend_is_a_one_line_error(tmp_path):
    done = cli("palindrome", "train", "--backend", "compiled", "--input-length", "4", "--out", tmp_path / "run",
               env=no_kernel_env())
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "LSTMGAN_NO_KERNEL" in done.stderr and not (tmp_path / "run").exists()


def test_build_kernels_command_reports_the_cached_module():
    done = cli("build-kernels")
    assert done.returncode == 0 and "kernel ready" in done.stdout
