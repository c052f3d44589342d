"""Figures and tables of the long-range palindrome study (docs/palindrome.md, section 4).

    python benchmarks/palindrome_long_range.py runs/long --out docs/figures

Reads, under the study folder: the curriculum runs `lstm-T{200,500,1000}-s{0,1,2}/`, fresh-data
scores `fresh/T{T}-s{seed}.json` and zero-shot scores `zero-shot/T1000-s{seed}-at-{T}.json` (both
written by `lstmgan palindrome evaluate --n 2000 [--input-length T]`), and the RNN sweeps
`rnn-sweep*/results.csv` (per length and seed, the better of the sweeps' budgets). Writes
`palindrome_long_range_curves.png` (test accuracy against training step, each length starting
where the previous one's best checkpoint was taken) and `palindrome_long_range_accuracy.png`
(accuracy on fresh palindromes against T, log axis).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

from lstmgan.plots import pyplot

LENGTHS = (200, 500, 1000)


def curve(run: Path) -> tuple[list[int], list[float]]:
    """(steps at each epoch end, test accuracy) of one run."""
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    config = json.loads((run / "config.json").read_text())
    per_epoch = -(-config["train_size"] // config["batch_size"])
    return [per_epoch * int(r["epoch"]) for r in rows], [float(r["test_accuracy"]) for r in rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    plt = pyplot()

    fig, axes = plt.subplots(1, len(args.seeds), figsize=(4.2 * len(args.seeds), 3.4), squeeze=False)
    for ax, seed in zip(axes[0], args.seeds):
        offset = 0
        for T in LENGTHS:
            run = args.study / f"lstm-T{T}-s{seed}"
            if not run.is_dir():
                continue
            steps, accuracy = curve(run)
            ax.plot([offset + s for s in steps], accuracy, marker="o", ms=3, label=f"T = {T}")
            best = max(range(len(accuracy)), key=lambda k: accuracy[k])
            offset += steps[best]            # the next length starts from this length's best checkpoint
        ax.axhline(0.1, color="grey", lw=0.8, ls=":")
        ax.set(title=f"seed {seed}", xlabel="training steps (batch 100), cumulative", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out accuracy")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("LSTM, one-hot input, chrono init: T = 200 from scratch, then 500 and 1000 by curriculum")
    fig.tight_layout()
    fig.savefig(args.out / "palindrome_long_range_curves.png", dpi=110)
    plt.close(fig)

    lstm: dict[int, list[float]] = {}
    for path in sorted((args.study / "fresh").glob("T*-s*.json")) + sorted(
            (args.study / "zero-shot").glob("T1000-s*-at-*.json")):
        result = json.loads(path.read_text())
        lstm.setdefault(result["input_length"], []).append(result["accuracy"])
    best_rnn: dict[tuple[int, int], float] = {}     # (T, seed) -> best over the RNN sweeps' budgets
    for sweep in sorted(args.study.glob("rnn-sweep*/results.csv")):
        for row in csv.DictReader(open(sweep)):
            key = int(row["input_length"]), int(row["seed"])
            best_rnn[key] = max(best_rnn.get(key, 0.0), float(row["best_test_accuracy"]))
    rnn: dict[int, list[float]] = {}
    for (T, _), accuracy in sorted(best_rnn.items()):
        rnn.setdefault(T, []).append(accuracy)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, data, marker in (("LSTM (fresh palindromes; T > 1000: the T = 1000 models, untrained there)",
                                 lstm, "o"), ("vanilla RNN (best held-out accuracy)", rnn, "s")):
        if not data:
            continue
        lengths = sorted(data)
        means = [statistics.fmean(data[T]) for T in lengths]
        ax.errorbar(lengths, means, yerr=[[m - min(data[T]) for m, T in zip(means, lengths)],
                                          [max(data[T]) - m for m, T in zip(means, lengths)]],
                    marker=marker, capsize=3, label=label)
    ax.axhline(0.99, color="tab:green", lw=0.8, ls="--", label="99%")
    ax.axhline(0.1, color="grey", lw=0.8, ls=":", label="chance")
    ax.set_xscale("log")
    ax.set(xlabel="input length T", ylabel="accuracy (mean, min–max over seeds)", ylim=(0, 1.02),
           title="how far back the networks remember")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "palindrome_long_range_accuracy.png", dpi=110)
    plt.close(fig)
    for T in sorted(lstm):
        print(f"LSTM T={T}: {[round(a, 4) for a in lstm[T]]}")
    for T in sorted(rnn):
        print(f"RNN T={T}: {[round(a, 4) for a in rnn[T]]}")


if __name__ == "__main__":
    main()
