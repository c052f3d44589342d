"""GAN studies: a grid of training options x seeds, as one recipe table and a figure.

The runs are made by `lstmgan.sweeps` (local processes or Ray). Each run is scored at its end on
the validation split (never the test set: a sweep chooses between recipes), and the table pools
the seeds of each configuration: mean, and min–max.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from .. import sweeps
from ..config import column_title, short_name
from ..errors import UsageError
from ..plots import pyplot
from ..runs import atomic_write_text
from .config import GANConfig
from .metrics import METRICS, Metric
from .train import train


def sweep(grid: dict[str, list], fixed: dict, out, resume: bool = False, **engine) -> list[dict]:
    """Train every point of `grid` under `out`, each evaluated on the validation split; write the tables."""
    fixed = {"eval_interval": 5, **fixed}
    if not fixed["eval_interval"] or not fixed.get("val_size", GANConfig.val_size):
        raise UsageError("a GAN sweep scores every run on the validation split: it needs --eval-interval "
                                "and --val-size above 0")
    return sweeps.sweep(STUDY, grid, fixed, out, resume, **engine)


def scores_of(result: dict) -> dict:
    """The validation scores of one run's final generator (every metric of the table), with its FID over the
    validation floor the run measured (val_reference.json; the floor is drawn once per run)."""
    scores = dict(result.get("validation", {}))
    reference = Path(result["run"]) / "val_reference.json"
    if "fid" in scores and reference.is_file():
        scores["fid_ratio"] = scores["fid"] / json.loads(reference.read_text())["fid_floor"]
    return {m.name: scores.get(m.name) for m in METRICS}


def _cell(values: list, metric: Metric) -> str:
    values = [v for v in values if v not in (None, "")]
    if not values:
        return "—"
    scale, digits = metric.scale, metric.digits
    text = f"{scale * statistics.fmean(values):.{digits}f}"
    if len(values) > 1:
        text += f" ({scale * min(values):.{digits}f}–{scale * max(values):.{digits}f})"
    return text


def write_results(out: Path, results: list[dict], varying: list[str]) -> None:
    """results.csv (one row per run), results.md (one row per configuration, seeds pooled), recipes.png."""
    config_keys = [f.name for f in GANConfig.option_fields()]
    rows = [{**{k: r[k] for k in config_keys}, **scores_of(r), "epochs_completed": r["epochs_completed"],
             "run": r["run"]} for r in results]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=config_keys + [m.name for m in METRICS] + ["epochs_completed", "run"])
        writer.writeheader()
        writer.writerows(rows)

    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in varying), []).append(row)
    shown = [m for m in METRICS if m.applies(any(r["conditional"] for r in rows), any(r["clusters"] for r in rows))]
    options = {f.name: f for f in GANConfig.option_fields()}
    header = [column_title(options[k]) for k in varying] + ["seeds"] + [m.title for m in shown]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, members in groups.items():
        cells = [str(v) for v in key] + [str(len(members))]
        cells += [_cell([member[m.name] for member in members], m) for m in shown]
        lines.append("| " + " | ".join(cells) + " |")
    n = results[0].get("eval_samples", "")
    split = {"tail": "the file's last", "stratified": "a seeded, digit-stratified draw of"}[results[0]["val_split"]]
    notes = ["", f"Each run's final generator on {n} samples against the validation split ({split} "
             f"{results[0]['val_size']} training images; never the test set), mean over seeds with min–max; "
             "FID / floor: the FID over real training images' FID at the same digit shares and size."]
    atomic_write_text(out / "results.md", "\n".join(lines + notes) + "\n")
    plot_recipes(out, groups, varying)


def plot_recipes(out: Path, groups: dict[tuple, list[dict]], varying: list[str]) -> None:
    plt = pyplot()
    short = {f.name: short_name(f) or f.name for f in GANConfig.option_fields()}
    labels = [", ".join(f"{short[k]}={v}" for k, v in zip(varying, key)) or "all" for key in groups]
    fids = [[m["fid"] for m in members] for members in groups.values()]
    means = [statistics.fmean(f) for f in fids]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(labels) + 1), 3.6))
    ax.bar(range(len(labels)), means, yerr=[[m - min(f) for m, f in zip(means, fids)],
                                            [max(f) - m for m, f in zip(means, fids)]], capsize=4, color="tab:blue")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="FID (validation split)", title="recipes: mean FID, min–max over seeds")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "recipes.png", dpi=110)
    plt.close(fig)


STUDY = sweeps.Study(GANConfig, write_results, train)
