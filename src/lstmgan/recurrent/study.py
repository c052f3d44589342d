"""Part I's cell of a pre-registered study (lstmgan.studies): one seed of one palindrome model at one T, trained
until it learns or its horizon runs out.

The horizon is the plan's FLOP budget for T turned into steps by the model's own cost formula (its registry
entry, see flops.py), capped by the plan's step ceiling (the ceiling alone where the plan gives no FLOP budget),
and rounded down to whole epochs (an epoch is the held-out check's period: with `data = "fresh"`, a count of
steps). A run stops at the first epoch whose held-out accuracy reaches the plan's threshold (`--patience 1`);
"steps to learn" are the steps at the end of that epoch.

Outcomes are read from what each run logged (its config.json, metrics.csv, summary.json, and fresh.json for a
plan that scores on fresh data), so that a plan over runs logged before it (round 4) tabulates them as they ran.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from ..studies import Outcome, Plan
from .config import PalindromeConfig
from .palindrome import num_palindromes
from .registry import model_spec
from .train import train


def steps_per_epoch(config: PalindromeConfig) -> int:
    """Training steps in one epoch of a run: its training part in batches (fresh data: the same count)."""
    n = min(config.data_size, num_palindromes(config.input_length, config.num_classes))
    return math.ceil(round(n * config.portion_train) / config.batch_size)


def flops_per_step(config: PalindromeConfig) -> int:
    return model_spec(config.model).flops(config).total


class PalindromeCell:
    """What one seed of a palindrome study trains, and how its outcome is read."""

    train = staticmethod(train)

    def options(self, plan: Plan, contender: dict, size: int, seed: int, rate: float) -> dict:
        """The run's options: the plan's fixed ones, the contender's, T, seed and rate, and the horizon as epochs
        with the stopping rule (the runner sets max_epoch, patience and target_accuracy)."""
        values = {"patience": 1, "target_accuracy": plan.accuracy, **plan.fixed, **contender.get("options", {}),
                  "input_length": size, "seed": seed, "learning_rate": rate}
        config = PalindromeConfig.from_dict(values, f"{plan.path}: contender {contender['name']}").validate()
        budget = plan.max_steps[size]
        if size in plan.flops:
            budget = min(budget, int(plan.flops[size] // flops_per_step(config)))
        return {**values, "max_epoch": max(1, budget // steps_per_epoch(config))}

    def outcome(self, plan: Plan, run_dir: Path, options: dict) -> Outcome:
        config = logged_config(run_dir)
        per_epoch, per_step = steps_per_epoch(config), flops_per_step(config)
        with open(run_dir / "metrics.csv") as f:
            accuracy = [(int(row["epoch"]), float(row["test_accuracy"])) for row in csv.DictReader(f)]
        first = next((epoch for epoch, value in accuracy if value >= plan.accuracy), None)
        steps = first * per_epoch if first else None
        summary = json.loads((run_dir / "summary.json").read_text())
        learned = first is not None
        if plan.learned_on == "fresh":       # the last epoch's model on palindromes no run trained on
            learned = json.loads((run_dir / "fresh.json").read_text())["accuracy"] >= plan.accuracy
        horizon = config.max_epoch * per_epoch
        return Outcome(learned=learned, steps=steps, flops=steps * per_step if steps else None,
                       horizon_steps=horizon, horizon_flops=float(horizon * per_step),
                       cpu_seconds=summary.get("cpu_time_s"), best=max(value for _, value in accuracy))


def logged_config(run_dir: Path) -> PalindromeConfig:
    """The options a run ran with, from its config.json (what it logged beside them left out)."""
    saved = json.loads((run_dir / "config.json").read_text())
    return PalindromeConfig(**{k: v for k, v in saved.items() if k in PalindromeConfig.defaults()})


CELL = PalindromeCell()
