"""Per-step time of our LSTM against torch.nn.LSTM, side by side in one process.

A training step is forward + backward + gradient clipping + Adam on a batch of palindrome
inputs (batch 100, hidden 128, input_dim 1 by default). Implementations are run in
interleaved rounds and the median per-step time is reported, with ratios to torch.

    python benchmarks/lstm_speed.py                   # T = 5, 19, 35, 100
    python benchmarks/lstm_speed.py --threads 2 --rounds 15 --markdown
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from lstmgan.recurrent import LSTM, VanillaRNN


def torch_lstm(input_dim, hidden, classes):
    lstm, head = nn.LSTM(input_dim, hidden, batch_first=True), nn.Linear(hidden, classes)
    return (lambda x: head(lstm(x)[0][:, -1])), list(lstm.parameters()) + list(head.parameters())


def torch_rnn(input_dim, hidden, classes):
    rnn, head = nn.RNN(input_dim, hidden, batch_first=True), nn.Linear(hidden, classes)
    return (lambda x: head(rnn(x)[0][:, -1])), list(rnn.parameters()) + list(head.parameters())


def ours(cls, **kw):
    def build(input_dim, hidden, classes):
        model = cls(input_dim, hidden, classes, **kw)
        return model, list(model.parameters())
    return build


def training_step(forward, params, x, y, optimizer):
    loss = F.cross_entropy(forward(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(params, 10.0)
    optimizer.step()


def measure(builders: dict, x, y, rounds: int, steps: int, train: bool) -> dict:
    """Median seconds per step for each builder, measured in interleaved rounds."""
    torch.manual_seed(0)
    runners = {}
    for name, build in builders.items():
        forward, params = build(x.shape[-1], 128, 10)
        if train:
            optimizer = torch.optim.Adam(params, lr=1e-3)
            runners[name] = lambda f=forward, p=params, o=optimizer: training_step(f, p, x, y, o)
        else:
            def infer(f=forward):
                with torch.no_grad():
                    f(x)
            runners[name] = infer
    times = {name: [] for name in runners}
    for name, run in runners.items():       # warm-up
        for _ in range(3):
            run()
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(steps):
                run()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[5, 19, 35, 100])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--inference-batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, hidden 128, "
          f"input_dim 1; median of {args.rounds} interleaved rounds")
    rows = []
    for T in args.lengths:
        x, y = torch.randint(0, 10, (args.batch, T, 1)).float(), torch.randint(0, 10, (args.batch,))
        steps = max(1, 200 // T)
        lstm = measure({"torch.nn.LSTM": torch_lstm, "ours fused": ours(LSTM),
                        "ours per-gate": ours(LSTM, fused=False)}, x, y, args.rounds, steps, train=True)
        rnn = measure({"torch.nn.RNN": torch_rnn, "ours RNN fused": ours(VanillaRNN)}, x, y, args.rounds, steps,
                      train=True)
        xi = torch.randint(0, 10, (args.inference_batch, T, 1)).float()
        infer = measure({"torch.nn.LSTM": torch_lstm, "ours fused": ours(LSTM)}, xi, None, args.rounds,
                        max(1, steps // 4), train=False)
        rows.append((T, lstm, rnn, infer))

    header = ["T", "torch.nn.LSTM ms", "ours fused ms", "fused / torch", "ours per-gate ms", "per-gate / torch",
              "RNN: ours / torch.nn.RNN", f"inference B={args.inference_batch}: fused / torch"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for T, lstm, rnn, infer in rows:
        t = lstm["torch.nn.LSTM"]
        print(f"| {T} | {1e3 * t:.2f} | {1e3 * lstm['ours fused']:.2f} | {lstm['ours fused'] / t:.2f} | "
              f"{1e3 * lstm['ours per-gate']:.2f} | {lstm['ours per-gate'] / t:.2f} | "
              f"{rnn['ours RNN fused'] / rnn['torch.nn.RNN']:.2f} | "
              f"{infer['ours fused'] / infer['torch.nn.LSTM']:.2f} |")


if __name__ == "__main__":
    main()
