"""Part I's models side by side: parameters and time per training step, as ratios to the LSTM, in one process.

A training step is forward + backward + gradient clipping + Adam on a batch of one-hot digit
sequences (batch 100, input_dim 10), with each model at the size the study uses (--sizes
overrides: MODEL=HIDDEN[:LAYERS]). Models run in interleaved rounds; each cell is the
median per-step time; ratios are over the LSTM measured in the same rounds.

    python benchmarks/palindrome_models.py --threads 1 --lengths 35 1000
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from lstmgan.recurrent import PalindromeConfig, build_model
from lstmgan.recurrent.registry import parameter_count

# the study's sizes: width (and layers) that put each model within 2x of the LSTM's ~72k parameters
STUDY_SIZES = {"lstm": "128", "rnn": "200", "gru": "128", "transformer": "64:2", "lru": "64:2"}


def build(model: str, size: str) -> torch.nn.Module:
    hidden, _, layers = size.partition(":")
    options = {"num_layers": int(layers)} if layers else {}
    if model == "transformer":
        options["num_heads"] = 4
    config = PalindromeConfig(model=model, input_dim=10, num_hidden=int(hidden), device="cpu", **options).validate()
    return build_model(config)


def step_time(models: dict, T: int, rounds: int) -> dict:
    """Median seconds per training step of each model at length T, in interleaved rounds."""
    torch.manual_seed(0)
    x = F.one_hot(torch.randint(10, (100, T)), 10).float()
    y = torch.randint(10, (100,))
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=1e-3) for name, m in models.items()}

    def step(name):
        loss = F.cross_entropy(models[name](x), y)
        optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(models[name].parameters(), 10.0)
        optimizers[name].step()

    times = {name: [] for name in models}
    for name in models:          # warm-up
        step(name)
    for _ in range(rounds):
        for name in models:
            start = time.perf_counter()
            step(name)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(STUDY_SIZES))
    parser.add_argument("--sizes", nargs="*", default=[], metavar="MODEL=HIDDEN[:LAYERS]")
    parser.add_argument("--lengths", type=int, nargs="+", default=[35, 1000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = STUDY_SIZES | dict(s.split("=", 1) for s in args.sizes)
    models = {name: build(name, sizes[name]) for name in ["lstm"] + [m for m in args.models if m != "lstm"]}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch 100, one-hot input (input_dim 10), "
          f"median of {args.rounds} interleaved rounds\n")
    times = {T: step_time(models, T, args.rounds if T < 1000 else max(3, args.rounds // 2)) for T in args.lengths}
    lstm_params = parameter_count(models["lstm"])
    header = ["model", "size (hidden[:layers])", "parameters", "/ LSTM"]
    for T in args.lengths:
        header += [f"T = {T} ms", "/ LSTM"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, model in models.items():
        count = parameter_count(model)
        cells = [name, sizes[name], f"{count:,}", f"{count / lstm_params:.2f}"]
        for T in args.lengths:
            cells += [f"{1e3 * times[T][name]:.1f}", f"{times[T][name] / times[T]['lstm']:.2f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
