"""Part II's cell of a pre-registered study (lstmgan.studies): one training seed of one GAN recipe, trained for the
plan's budget in iterations, then its validation-chosen snapshot scored on the validation split.

A GAN plan names its sizes `budgets` (iterations: every contender gets the same), one learning rate (`[rate] grid`
of one), and `[scoring]`:

    samples         images per score (10,000)
    seeds           sampling seeds per score, from `first_seed` on, never the run's selection seed (5)
    baseline        the contender every other one is judged against (the first one)

A contender beats the baseline only by a margin beyond the band: the larger of 3 × the validation floor's sd over
real-vs-real draws and the spread (max − min) of either one's FIDs over its sampling seeds (docs/gan.md §2);
anything closer is a tie. The table reads each run's `study_scores.json`, written when its training ends.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..runs import atomic_write_text
from ..studies import Plan, seed_dir
from .config import GANConfig
from .mnist import TRAIN_SIZE

SCORES = "study_scores.json"
SCORING = "study_scoring"          # the options key that carries [scoring] to the worker (popped before training)
DEFAULT_SCORING = {"samples": 10000, "seeds": 5, "first_seed": 1}


@dataclass(frozen=True)
class GANOutcome:
    """One seed's validation FIDs over its sampling seeds, and the floor's sd (the real-vs-real noise)."""

    fids: list[float]
    floor: float
    floor_sd: float
    cpu_seconds: float | None
    iterations: int
    learned: bool = False          # the core's boundary rule does not apply to a GAN plan (no threshold)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.fids)

    @property
    def spread(self) -> float:
        return max(self.fids) - min(self.fids)


def scoring(plan: Plan) -> dict:
    return {**DEFAULT_SCORING, **plan.raw.get("scoring", {})}


def train_and_score(options: dict, run_dir, resume: bool = False, progress: bool = True,
                    allow_host_change: bool = False) -> dict:
    """Train one seed (resuming what is there), then score its best.pt on the validation split."""
    from .train import train

    options = dict(options)
    how = options.pop(SCORING, DEFAULT_SCORING)
    summary = train(options, run_dir, resume, progress, allow_host_change)
    score_run(Path(run_dir), how)
    return summary


def score_run(run_dir: Path, how: dict) -> dict:
    """best.pt (or last.pt for a run that never evaluated) on the validation split: FID over the sampling seeds."""
    from .evaluate import evaluate_checkpoint

    best = run_dir / "checkpoints" / "best.pt"
    checkpoint = best if best.is_file() else run_dir / "checkpoints" / "last.pt"
    result = evaluate_checkpoint(checkpoint, n=how["samples"], seed=how["first_seed"], device="cpu",
                                 reference=False, against="val", seeds=how["seeds"])
    scores = {"checkpoint": checkpoint.name, "selection_seed": result["selection_seed"],
              **{k: result["over_seeds"][k] for k in ("seeds", "fid", "fid_mean", "fid_sd")},
              "fid_floor": result["fid_floor"], "fid_floor_sd": result["fid_floor_sd"],
              **{k: result[k] for k in ("precision", "recall", "cluster_mismatch") if k in result}}
    atomic_write_text(run_dir / SCORES, json.dumps(scores, indent=2) + "\n")
    return scores


def batches_per_epoch(config: GANConfig) -> int:
    return math.ceil((TRAIN_SIZE - config.val_size) / config.batch_size)


class GANCell:
    """What one seed of a GAN study trains, and how it is scored and tabulated."""

    train = staticmethod(train_and_score)

    def options(self, plan: Plan, contender: dict, size: int, seed: int, rate: float) -> dict:
        """The run's options: the plan's fixed ones, the contender's, seed and rate; the budget `size` as
        --max-iterations, with enough epochs to hold it (unless the plan sets --n-epochs)."""
        values = {**plan.fixed, **contender.get("options", {}), "seed": seed, "lr": rate, "max_iterations": size}
        where = f"{plan.path}: contender {contender['name']}"
        config = GANConfig.from_dict(values, where)
        if "n_epochs" not in values:
            values["n_epochs"] = math.ceil(size / batches_per_epoch(config))
        GANConfig.from_dict(values, where).validate()
        if not values.get("eval_interval"):
            raise UsageError(f"{where}: a GAN study needs eval_interval > 0 (best.pt is chosen on the validation "
                             "split)")
        return {**values, SCORING: scoring(plan)}

    def outcome(self, plan: Plan, run_dir: Path, options: dict) -> GANOutcome:
        path = run_dir / SCORES
        scores = json.loads(path.read_text()) if path.is_file() else score_run(run_dir, options[SCORING])
        summary = json.loads((run_dir / "summary.json").read_text())
        return GANOutcome(fids=scores["fid"], floor=scores["fid_floor"], floor_sd=scores["fid_floor_sd"],
                          cpu_seconds=summary.get("cost", {}).get("cpu_seconds"), iterations=summary["iterations"])

    def table(self, plan: Plan, rows: list[dict]) -> list[str]:
        """results.md's body: per budget and contender, the seeds' validation FID (mean over sampling seeds),
        the spread, CPU seconds, and the verdict against the baseline."""
        how = scoring(plan)
        baseline = plan.raw.get("scoring", {}).get("baseline", plan.contenders[0]["name"])
        lines = [f"Validation FID of each seed's best.pt: {how['samples']} samples, mean over {how['seeds']} "
                 f"sampling seeds from {how['first_seed']} on (never the selection seed). A contender beats "
                 f"`{baseline}` only by more than the band: the larger of 3 × the floor's sd and either one's "
                 "spread over its sampling seeds; anything closer is a tie.", "",
                 *(["One training seed per contender: the training-seed spread is not in the band.", ""]
                   if plan.first_seeds == 1 else []),
                 "| contender | iterations | seeds | FID (mean per seed) | spread | floor ± sd | CPU s | vs baseline |",
                 "|---|---|---|---|---|---|---|---|"]
        for size in plan.lengths:
            cells = {r["contender"]: r["outcomes"] for r in rows if r["size"] == size}
            base = cells.get(baseline) or []
            for name, outcomes in cells.items():
                if not outcomes:
                    lines.append(f"| {name} | {size} | 0 | not run | — | — | — | — |")
                    continue
                means = " / ".join(f"{o.mean:.2f}" for o in outcomes)
                cpu = [o.cpu_seconds for o in outcomes if o.cpu_seconds is not None]
                judged = "baseline" if name == baseline else verdict(outcomes, base)
                lines.append(f"| {name} | {size} | {len(outcomes)} | {means} | {max(o.spread for o in outcomes):.2f} "
                             f"| {outcomes[0].floor:.2f} ± {outcomes[0].floor_sd:.2f} | "
                             f"{f'{statistics.fmean(cpu):.0f}' if cpu else '—'} | {judged} |")
        return lines


    figure = "fid.png"

    def plot(self, plan: Plan, rows: list[dict]) -> dict:
        """fid.png: one panel per budget, each seed's in-training validation FID against iterations (log scale),
        one colour per contender. Returns the curves drawn: {(budget, contender, seed): (iterations, fids)}."""
        from ..plots import pyplot

        plt = pyplot()
        fig, axes = plt.subplots(1, len(plan.lengths), figsize=(5.5 * len(plan.lengths), 4), squeeze=False)
        drawn = {}
        for ax, size in zip(axes[0], plan.lengths):
            for index, contender in enumerate(plan.contenders):
                for seed in range(len(next((r["outcomes"] for r in rows if r["size"] == size
                                            and r["contender"] == contender["name"]), []))):
                    with open(seed_dir(plan, contender["name"], size, seed) / "metrics.csv") as f:
                        points = [(int(r["iteration"]), float(r["fid"])) for r in csv.DictReader(f) if r["fid"]]
                    xs, ys = [x for x, _ in points], [y for _, y in points]
                    ax.plot(xs, ys, marker=".", color=f"C{index % 10}", label=f"{contender['name']} (seed {seed})")
                    drawn[size, contender["name"], seed] = (xs, ys)
            ax.set(xlabel="iteration", ylabel="validation FID (selection seed)", yscale="log",
                   title=f"{size} iterations")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"{plan.name}: in-training validation FID")
        fig.tight_layout()
        fig.savefig(plan.log / self.figure, dpi=110)
        plt.close(fig)
        return drawn


def band(ours: list[GANOutcome], theirs: list[GANOutcome]) -> float:
    both = ours + theirs
    return max(3 * max(o.floor_sd for o in both), max(o.spread for o in both))


def verdict(ours: list[GANOutcome], theirs: list[GANOutcome]) -> str:
    """better / worse / tie against the baseline's seeds, by the margin of the means against the band."""
    if not theirs:
        return "baseline not run"
    margin = statistics.fmean(o.mean for o in theirs) - statistics.fmean(o.mean for o in ours)
    width = band(ours, theirs)
    word = "better" if margin > width else "worse" if -margin > width else "tie"
    return f"{word} ({margin:+.2f}, band {width:.2f})"


CELL = GANCell()
