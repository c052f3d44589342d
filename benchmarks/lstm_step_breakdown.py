"""Where a training step's time goes at short T: ours against torch.nn.LSTM, part by part, in one process.

A step is: logits (recurrence + head), the loss, backward, zero_grad, gradient clipping, and the
optimizer step. Each part is timed on its own (torch.utils.benchmark-style: many repetitions,
interleaved rounds, medians), for our LSTM (compiled kernel) and for torch.nn.LSTM + Linear,
and the optimizer step three ways: Adam's default (a loop over parameters on CPU), foreach
(one multi-tensor kernel per operation) and fused (one kernel for the whole update).

    python benchmarks/lstm_step_breakdown.py --threads 2 --length 35
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from lstmgan.recurrent import LSTM, backends

OPTIMIZERS = {"Adam (default)": {}, "Adam foreach": {"foreach": True}, "Adam fused": {"fused": True}}


class TorchLSTM(nn.Module):
    def __init__(self, input_dim: int, hidden: int, classes: int):
        super().__init__()
        self.lstm, self.head = nn.LSTM(input_dim, hidden, batch_first=True), nn.Linear(hidden, classes)

    def forward(self, x):
        return self.head(self.lstm(x)[0][:, -1])


def median_ms(run, rounds: int, repeat: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            run()
        times.append(1e3 * (time.perf_counter() - start) / repeat)
    return statistics.median(times)


def parts(model: nn.Module, x, y, optimizer_kwargs: dict, max_norm: float = 10.0) -> dict:
    """Callables for each part of one training step, each runnable on its own, repeatedly."""
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3, **optimizer_kwargs)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()                                     # optimizer state exists from here on
    grads = [p.grad.clone() for p in params]

    def backward():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    def restore_grads():
        for p, g in zip(params, grads):
            p.grad = g.clone()

    def whole_step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()

    with torch.no_grad():
        features = model(x).detach().requires_grad_()
    return {
        "forward (logits)": lambda: model(x),
        "loss forward + backward alone": lambda: F.cross_entropy(features, y).backward(),
        "forward + backward": backward,
        "zero_grad": lambda: optimizer.zero_grad(set_to_none=True) or restore_grads(),
        "restore grads (baseline of the two below)": restore_grads,
        "clip_grad_norm_": lambda: (restore_grads(), nn.utils.clip_grad_norm_(params, max_norm)),
        "optimizer step": lambda: (restore_grads(), optimizer.step()),
        "whole step": whole_step,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--length", type=int, default=35)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--input-dim", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backends.build_kernel()
    torch.manual_seed(0)
    x, y = torch.randn(args.batch, args.length, args.input_dim), torch.randint(0, 10, (args.batch,))
    models = {"ours": lambda: LSTM(args.input_dim, 128, 10, backend="compiled"),
              "torch.nn.LSTM": lambda: TorchLSTM(args.input_dim, 128, 10)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), T = {args.length}, batch {args.batch}, "
          f"hidden 128, input_dim {args.input_dim}; ms, medians of {args.rounds} interleaved rounds\n")
    results = {}
    for opt_name, kwargs in OPTIMIZERS.items():
        runners = {(name, part): run for name, build in models.items()
                   for part, run in parts(build(), x, y, kwargs).items()}
        for run in runners.values():
            run(), run()
        times = {key: [] for key in runners}
        for _ in range(args.rounds):
            for key, run in runners.items():
                times[key].append(median_ms(run, 1, args.repeat))
        results[opt_name] = {key: statistics.median(t) for key, t in times.items()}
    names = list(models)
    print("| part | " + " | ".join(f"{n}, {o}" for o in OPTIMIZERS for n in names) + " |")
    print("|---|" + "---|" * (len(names) * len(OPTIMIZERS)))
    for part in parts(models["ours"](), x, y, {}):
        print(f"| {part} | " + " | ".join(f"{results[o][(n, part)]:.3f}" for o in OPTIMIZERS for n in names) + " |")
    print("\nwhole step, ours / torch.nn.LSTM:")
    reference = results["Adam (default)"][("torch.nn.LSTM", "whole step")]
    for o in OPTIMIZERS:
        ours = results[o][("ours", "whole step")]
        print(f"  {o:<15} same optimizer both sides: {ours / results[o][('torch.nn.LSTM', 'whole step')]:.2f}x; "
              f"against torch with default Adam: {ours / reference:.2f}x")
    print(f"\nparameter tensors: ours {len(list(models['ours']().parameters()))}, "
          f"torch.nn.LSTM + Linear {len(list(models['torch.nn.LSTM']().parameters()))}")


if __name__ == "__main__":
    main()
