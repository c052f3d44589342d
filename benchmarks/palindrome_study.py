"""Which architectures remember: the tables of the model study from its sweep directories.

Each run of the sweeps (`lstmgan palindrome sweep --models M ... --out DIR/M`) is scored on fresh
palindromes (generated with a seed no run trained on) from its last checkpoint; its held-out curve
(metrics.csv) gives the steps to 99%, its summary.json the CPU wall time (none for a run on a GPU).
Nothing here selects a model: every run's last checkpoint is scored once.

    python benchmarks/palindrome_study.py DIR/lstm DIR/rnn DIR/gru DIR/lru DIR/transformer --n 2000 \
        [--generalise 400 1000 2000] [--markdown docs/figures/study.md] [--figure docs/figures/study.png]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from pathlib import Path

from lstmgan.recurrent.evaluate import evaluate_checkpoint
from lstmgan.recurrent.registry import REGISTRY

TARGET = 0.99
FRESH_SEED = 987654321     # no training run draws its data from this seed


def run_record(run: Path, n: int, generalise: list[int]) -> dict:
    config = json.loads((run / "config.json").read_text())
    device = config.get("resolved_device", "cpu")
    summary = json.loads((run / "summary.json").read_text())
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    steps_per_epoch = math.ceil(config["train_size"] / config["batch_size"])
    first = next((int(r["epoch"]) for r in rows if float(r["test_accuracy"]) >= TARGET), None)
    checkpoint = run / "checkpoints" / "last.pt"
    fresh = {T: evaluate_checkpoint(checkpoint, n, FRESH_SEED, "cpu", T)["accuracy"]
             for T in [config["input_length"], *generalise]}
    return {"model": config["model"], "T": config["input_length"], "seed": config["seed"],
            "parameters": summary.get("parameters"), "fresh": fresh,
            "steps_to_target": first * steps_per_epoch if first else None,
            # epochs cost the same, so the time to the target is the wall time's share of the epochs to it;
            # a run on an accelerator has no CPU time to report
            "device": device,
            "seconds_to_target": summary["wall_time_s"] * first / len(rows) if first and device == "cpu" else None,
            "steps": len(rows) * steps_per_epoch, "seconds": summary["wall_time_s"]}


def median_or_dash(values: list, fmt: str) -> str:
    values = [v for v in values if v is not None]
    return format(statistics.median(values), fmt) if values else "—"


def tables(records: list[dict], generalise: list[int]) -> str:
    models = list(dict.fromkeys(r["model"] for r in records))
    lengths = sorted({r["T"] for r in records})
    out = ["| model | parameters | longest T at ≥ 99% by all seeds | "
           + " | ".join(f"T = {T}: seeds ≥ 99% (fresh acc %)" for T in lengths) + " |",
           "|" + "---|" * (3 + len(lengths))]
    for model in models:
        mine = [r for r in records if r["model"] == model]
        cells, longest = [], "none"
        for T in lengths:
            at = [r for r in mine if r["T"] == T]
            good = sum(r["fresh"][T] >= TARGET for r in at)
            mean = statistics.fmean(r["fresh"][T] for r in at) if at else float("nan")
            cells.append(f"{good}/{len(at)} ({100 * mean:.1f})" if at else "—")
            if at and good == len(at):
                longest = str(T)
        title = REGISTRY[model].title if model in REGISTRY else model
        params = ", ".join(f"{p:,}" for p in sorted({r["parameters"] for r in mine} - {None}))
        out.append(f"| {title} | {params} | {longest} | " + " | ".join(cells) + " |")
    out += ["", "| model | T | steps to 99% held out (median) | CPU s to 99% (median) | runs that got there |",
            "|---|---|---|---|---|"]
    for model in models:
        for T in lengths:
            at = [r for r in records if r["model"] == model and r["T"] == T]
            if at:
                reached = [r for r in at if r["steps_to_target"] is not None]
                on_cpu = all(r["device"] == "cpu" for r in at)
                seconds = median_or_dash([r["seconds_to_target"] for r in at], ".0f") if on_cpu else "(not a CPU run)"
                out.append(f"| {model} | {T} | {median_or_dash([r['steps_to_target'] for r in at], '.0f')} | "
                           f"{seconds} | "
                           f"{len(reached)}/{len(at)} |")
    if generalise:
        out += ["", "| model | trained at T | " + " | ".join(f"fresh acc % at T = {g}" for g in generalise) + " |",
                "|" + "---|" * (2 + len(generalise))]
        for model in models:
            for T in lengths:
                at = [r for r in records if r["model"] == model and r["T"] == T]
                if at:
                    cells = [" / ".join(f"{100 * r['fresh'][g]:.1f}" for r in at) for g in generalise]
                    out.append(f"| {model} | {T} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def figure(records: list[dict], path: Path) -> None:
    from lstmgan.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for model in dict.fromkeys(r["model"] for r in records):
        lengths = sorted({r["T"] for r in records if r["model"] == model})
        means = [statistics.fmean(r["fresh"][T] for r in records if r["model"] == model and r["T"] == T)
                 for T in lengths]
        lows = [min(r["fresh"][T] for r in records if r["model"] == model and r["T"] == T) for T in lengths]
        ax.plot(lengths, means, marker="o", label=REGISTRY[model].title if model in REGISTRY else model)
        ax.fill_between(lengths, lows, means, alpha=0.15)
    ax.axhline(TARGET, color="grey", lw=0.8, ls="--", label="99%")
    ax.set(xscale="log", xlabel="input length T", ylabel="accuracy on fresh palindromes", ylim=(0, 1.02),
           title="which architectures remember (mean over seeds, band: worst seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--n", type=int, default=2000, help="fresh palindromes per score")
    parser.add_argument("--generalise", type=int, nargs="*", default=[], help="also score every run at these T")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--figure", type=Path)
    parser.add_argument("--json", type=Path, help="also write every run's record (fresh scores, steps, seconds)")
    args = parser.parse_args()
    runs = sorted(run for sweep in args.sweeps for run in (sweep / "runs").iterdir()
                  if (run / "summary.json").is_file())
    records = [run_record(run, args.n, args.generalise) for run in runs]
    text = tables(records, args.generalise)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.figure:
        figure(records, args.figure)
    if args.json:
        args.json.write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
