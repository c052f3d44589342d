"""Palindrome studies: models x lengths x seeds x any other option, as one table and figures.

The runs are made by `lstmgan.sweeps` (local processes or Ray); this module names them and
writes the results: results.csv, results.md and the accuracy-vs-length and curve figures.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from .. import sweeps
from ..config import column_title
from ..plots import line_plot, pyplot
from ..runs import atomic_write_text
from .config import PalindromeConfig
from .registry import REGISTRY
from .train import train


def table_options() -> list:
    """The options with a column of their own in results.md: those declared with a `title=`, in their order."""
    return [f for f in PalindromeConfig.option_fields() if f.metadata.get("title")]


def sweep(grid: dict[str, list], fixed: dict, out, resume: bool = False, **engine) -> list[dict]:
    """Train every point of `grid` (with the `fixed` options) under `out`; write the tables and figures.

    `engine`: the options of `lstmgan.sweeps.sweep` (engine, jobs, threads, address, max_retries, ...)."""
    return sweeps.sweep(STUDY, grid, fixed, out, resume, **engine)


def _spread(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    accuracy = all(isinstance(v, float) and v <= 1 for v in values)
    fmt = (lambda v: f"{100 * v:.2f}") if accuracy else (lambda v: f"{v:.0f}" if v == int(v) else f"{v:.1f}")
    mean = statistics.fmean(values)
    if len(values) == 1:
        return fmt(mean)
    return f"{fmt(mean)} ({fmt(min(values))}–{fmt(max(values))})"


def group_results(results: list[dict], varying: list[str]) -> list[tuple[dict, list[dict]]]:
    """Runs grouped by the options that varied in the sweep (seeds pooled); every row carries the whole
    configuration of its runs, which differ only in their seed."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        key = tuple(repr(r.get(k)) for k in ["model", "input_length", *varying])
        groups.setdefault(key, []).append(r)
    return [({k: v for k, v in rows[0].items() if k != "seed"}, rows) for rows in groups.values()]


def write_results(out: Path, results: list[dict], varying: list[str]) -> None:
    """results.csv (one row per run), results.md (one row per configuration, seeds pooled) and figures."""
    config_keys = [f.name for f in PalindromeConfig.option_fields()]
    columns = config_keys + ["epochs", "final_test_accuracy", "best_test_accuracy", "best_epoch",
                             "first_full_epoch", "final_train_accuracy", "stopped_early", "run"]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)

    # a varied option with no column of its own (--backend, --init-from, ...) is shown beside the model's options
    columns = table_options()
    keys = [f.name for f in columns]
    others = [k for k in varying if k not in keys and k not in model_options_of_any(results)]
    header = [column_title(f) for f in columns] + ["Model options", *(["Varied"] if others else []), "Params", "Seeds",
              "Final test acc % (min–max)", "Best test acc % (min–max)", "Epoch of first 100% (min–max)",
              "Seeds at 100%"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, rows in group_results(results, varying):
        cells = [model_title(key[k]) if k == "model" else f"{key[k]:g}" if isinstance(key[k], float) else str(key[k])
                 for k in keys]
        cells += [model_options(key)] + ([", ".join(f"{k} {key[k]}" for k in others)] if others else [])
        full = [r["first_full_epoch"] for r in rows]
        parameters = {r.get("parameters") for r in rows} - {None}
        cells += [", ".join(f"{p:,}" for p in sorted(parameters)) or "—", str(len(rows)),
                  _spread([r["final_test_accuracy"] for r in rows]),
                  _spread([r["best_test_accuracy"] for r in rows]), _spread(full),
                  f"{sum(e is not None for e in full)}/{len(rows)}"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["", "Accuracy is on the held-out test split (never seen in training); mean over seeds, "
             "min–max in brackets. 'Epoch of first 100%' counts only seeds that got there."]
    if any(r["patience"] for r in results):
        target = "/".join(f"{100 * t:g}%" for t in sorted({r.get("target_accuracy", 1.0) for r in results}))
        notes.append(f"Runs stop early once test accuracy has stayed at {target} or more for "
                     f"{'/'.join(str(p) for p in sorted({r['patience'] for r in results}))} epochs (--patience).")
    if any(r.get("give_up") for r in results):
        notes.append(f"Runs give up once the best test accuracy has not improved for "
                     f"{'/'.join(str(p) for p in sorted({r['give_up'] for r in results}))} epochs (--give-up).")
    atomic_write_text(out / "results.md", "\n".join(lines + notes) + "\n")
    plot_sweep(out, results, varying)


def model_title(name: str) -> str:
    return REGISTRY[name].title if name in REGISTRY else name.upper()


def model_options_of_any(results: list[dict]) -> set[str]:
    return {o for r in results if r["model"] in REGISTRY for o in REGISTRY[r["model"]].option_names}


def model_options(key: dict) -> str:
    """The model-specific options a model takes, as 'name value' (the forget bias: 'uniform' for torch's init)."""
    spec = REGISTRY.get(key["model"])
    if spec is None or not spec.options:
        return "—"
    shown = []
    for option in spec.option_names:
        value = key.get(option)
        if option == "forget_bias":
            value = "uniform" if value is None else value if isinstance(value, str) else f"{value:g}"
        shown.append(f"{option.replace('_', ' ')} {value}")
    return ", ".join(shown)


def plot_sweep(out: Path, results: list[dict], varying: list[str]) -> None:
    series_keys = ["model"] + [k for k in varying if k not in ("model", "input_length")]

    def label(r):
        return ", ".join(f"{k}={r[k]}" if k != "model" else model_title(r[k]) for k in series_keys)

    by_series: dict[str, dict[int, list[float]]] = {}
    for r in results:
        by_series.setdefault(label(r), {}).setdefault(r["input_length"], []).append(r["final_test_accuracy"])
    if len({r["input_length"] for r in results}) > 1:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, per_length in by_series.items():
            lengths = sorted(per_length)
            means = [statistics.fmean(per_length[t]) for t in lengths]
            lows = [m - min(per_length[t]) for m, t in zip(means, lengths)]
            highs = [max(per_length[t]) - m for m, t in zip(means, lengths)]
            ax.errorbar(lengths, means, yerr=[lows, highs], marker="o", capsize=3, label=name)
        ax.axhline(1 / results[0]["num_classes"], color="grey", lw=0.8, ls=":", label="chance")
        ax.set(xlabel="input length T", ylabel="final test accuracy", ylim=(0, 1.02),
               title="accuracy vs length (mean, min–max over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "accuracy_vs_length.png", dpi=110)
        plt.close(fig)
    for length in sorted({r["input_length"] for r in results}):
        series = {}
        for r in results:
            if r["input_length"] != length:
                continue
            rows = list(csv.DictReader(open(Path(r["run"]) / "metrics.csv")))
            series[f"{label(r)}, seed {r['seed']}"] = ([int(x["epoch"]) for x in rows],
                                                       [float(x["test_accuracy"]) for x in rows])
        line_plot(out / f"curves_T{length}.png", [{"series": series, "xlabel": "epoch", "ylabel": "test accuracy",
                                                   "ylim": (0, 1.02)}], title=f"test accuracy, T = {length}",
                  width=7)


STUDY = sweeps.Study(PalindromeConfig, write_results, train)
