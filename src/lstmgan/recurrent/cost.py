"""What one training step of a palindrome model costs: its parameters, FLOPs (the registry entry's formula, see
flops.py) and seconds measured on this machine (`lstmgan palindrome cost`)."""

from __future__ import annotations

import statistics
import time

import torch

from ..devices import resolve_device
from ..seeding import seed_everything
from . import backends
from .config import PalindromeConfig
from .palindrome import PalindromeDataset, random_palindromes
from .registry import build_model, model_spec, parameter_count
from .train import parameter_groups, train_step


def step_flops(config: PalindromeConfig):
    """Training FLOPs of one step (forward + backward over one batch), by the model's registry entry."""
    return model_spec(config.model).flops(config)


def step_seconds(config: PalindromeConfig, steps: int = 5, warmup: int = 1) -> list[float]:
    """Wall seconds of `steps` real training steps (Adam, clipping) on one batch of palindromes, after `warmup`
    steps; at torch's current thread count."""
    device = resolve_device(config.device)
    seed_everything(config.seed)
    model = build_model(config).to(device)
    optimizer = torch.optim.Adam(parameter_groups(model, config), lr=config.learning_rate)
    sequences = random_palindromes(config.batch_size, config.input_length, config.num_classes, config.seed)
    x, y = PalindromeDataset(sequences, config.input_dim, config.num_classes).batch(torch.arange(config.batch_size))
    x, y = x.to(device), y.to(device)
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss, _ = train_step(model, optimizer, x, y, config.max_norm)
        loss.item()                                   # waits for the step on any device
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def step_cost(config: PalindromeConfig, steps: int = 5) -> dict:
    """Parameters, FLOPs per training step (by kind and in all) and the median of `steps` measured steps."""
    config.validate()
    times = step_seconds(config, steps)
    flops = step_flops(config)
    device = resolve_device(config.device)
    backend = backends.resolved_name(config.backend, device, has_kernel=model_spec(config.model).has_kernel)
    return {"model": config.model, "input_length": config.input_length, "batch_size": config.batch_size,
            "parameters": parameter_count(build_model(config)), "flops_per_step": flops.as_dict(),
            "seconds_per_step": statistics.median(times), "seconds_measured": times, "steps_measured": steps,
            "threads": torch.get_num_threads(), "device": str(device), "backend": backend}
