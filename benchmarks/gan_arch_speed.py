"""Minutes per epoch of `lstmgan gan train` for each architecture, as a user's laptop runs it.

Each configuration trains twice from scratch through the real command, for SHORT and for LONG
iterations (no evaluations); the difference of the two wall times over LONG − SHORT iterations
is the cost of one iteration with everything the loop does per iteration (D and G steps, EMA,
logging, progress grids), start-up and k-means left out. An epoch is 50,000 / 64 = 782
iterations (the default validation split held out). The two architectures alternate, so load
on the machine hits both alike; run it on an idle machine.

    python benchmarks/gan_arch_speed.py --data-dir ../shared/data/mnist --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

CONFIGS = {
    "mlp, clusters 50": ["--arch", "mlp", "--clusters", "50", "--d-projection", "--g-conditional-bn"],
    "conv, clusters 50": ["--arch", "conv", "--clusters", "50", "--d-projection", "--g-conditional-bn"],
    "mlp, cGAN": ["--arch", "mlp", "--conditional", "--d-projection", "--g-conditional-bn"],
    "conv, cGAN": ["--arch", "conv", "--conditional", "--d-projection", "--g-conditional-bn"],
    "conv w128, cGAN": ["--arch", "conv", "--g-width", "128", "--conditional", "--d-projection",
                        "--g-conditional-bn"],
    "conv w128 + 28x28 maps, cGAN": ["--arch", "conv", "--g-width", "128", "--g-maps-28", "64", "--conditional",
                                     "--d-projection", "--g-conditional-bn"],
    "conv w128 + 28x28 maps, clusters 50": ["--arch", "conv", "--g-width", "128", "--g-maps-28", "64", "--clusters",
                                            "50", "--d-projection", "--g-conditional-bn"],
}
ITERATIONS_PER_EPOCH = 50_000 // 64 + 1


def wall_seconds(flags: list[str], iterations: int, threads: int, data_dir: str | None, dataset: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "lstmgan", "gan", "train", *flags, "--max-iterations", str(iterations),
                   "--ema-decay", "0.999", "--threads", str(threads), "--quiet", "--dataset", dataset,
                   "--out", f"{out}/run"] + (["--data-dir", data_dir] if data_dir else [])
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--short", type=int, default=50)
    parser.add_argument("--long", type=int, default=350)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    per_iteration = {name: [] for name in args.configs}
    for _ in range(args.rounds):
        for name in args.configs:
            short = wall_seconds(CONFIGS[name], args.short, args.threads, args.data_dir, args.dataset)
            long = wall_seconds(CONFIGS[name], args.long, args.threads, args.data_dir, args.dataset)
            per_iteration[name].append((long - short) / (args.long - args.short))
    print(f"{args.dataset}, {args.threads} thread(s), batch 64, EMA on; median of {args.rounds} rounds\n")
    print("| configuration | ms / iteration | minutes / epoch | / mlp |")
    print("|---|---|---|---|")
    results = {}
    for name, values in per_iteration.items():
        ms = 1e3 * statistics.median(values)
        results[name] = {"ms_per_iteration": ms, "minutes_per_epoch": ms * ITERATIONS_PER_EPOCH / 60e3}
    for name, r in results.items():
        mlp = results.get("mlp, " + name.split(", ")[-1])      # the MLP conditioned the same way
        ratio = f"{r['ms_per_iteration'] / mlp['ms_per_iteration']:.2f}" if mlp else "—"
        print(f"| {name} | {r['ms_per_iteration']:.1f} | {r['minutes_per_epoch']:.2f} | {ratio} |")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"threads": args.threads, "dataset": args.dataset, "results": results}, out, indent=1)


if __name__ == "__main__":
    main()
