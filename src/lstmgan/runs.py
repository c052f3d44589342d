"""Run directories shared by both parts: config.json, metrics.csv, checkpoints/, samples/.

    run = Run(out)
    run.check_can_start(resume)           # before anything is written
    state = run.resume_state(kind) if resume else None
    run.start(config)                     # creates the directory, writes config.json
    run.log({...})                        # one metrics.csv row
    run.save_checkpoint(kind, config, model=..., ...)   # last.pt (+ named snapshots)

The checkpoint carries the metrics rows logged so far, so a resumed run rewrites
metrics.csv to exactly what it was when the checkpoint was taken: rows logged after it
(by a run that was then killed) are dropped, never duplicated.
"""

from __future__ import annotations

import csv
import io
import json
import platform
from dataclasses import MISSING, asdict, fields, is_dataclass
from pathlib import Path

import torch

from .checkpoint import atomic_write, read_checkpoint, save_checkpoint
from .errors import UsageError


def atomic_write_text(path: Path, text: str) -> None:
    """Write text crash-safely, like checkpoints."""
    atomic_write(path, lambda f: f.write(text.encode()))


def environment() -> dict:
    """Versions recorded next to every resolved config."""
    from . import __version__

    return {"lstmgan_version": __version__, "torch_version": torch.__version__,
            "python_version": platform.python_version()}


def resolve_resume_config(saved: dict, given: dict, budget_keys: set[str]) -> dict:
    """The config of a resumed run: the saved one, with budget flags (epochs, patience...) updated.

    Any other flag given on the command line must agree with the saved run; changing the
    learning rate halfway, say, would make the run irreproducible, so it is refused.
    """
    config = dict(saved)
    for key, value in given.items():
        if key in budget_keys:
            config[key] = value
        elif key in saved and saved[key] != value:
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"{flag} {value} differs from the run being resumed ({saved[key]}); "
                             f"drop it, or start a new run in another --out")
    return config


def resolve_config(config_class, given, out, resume: bool, kind: str, budget_keys: set[str]):
    """A validated run config: the given values over the defaults, or over the saved run on --resume.

    `given` is a config instance or a dict of the values the user set."""
    values = asdict(given) if is_dataclass(given) else dict(given)
    if resume:
        # a run saved before an option existed ran with that option's default
        defaults = {f.name: f.default for f in fields(config_class) if f.default is not MISSING}
        saved = {**defaults, **Run(out).saved_config(kind)}
        values = resolve_resume_config(saved, values, budget_keys)
    return config_class.from_dict(values).validate()


class Run:
    """A run directory (see the module docstring)."""

    def __init__(self, path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.samples = self.path / "samples"
        self.last_checkpoint = self.checkpoints / "last.pt"
        self.metrics_path = self.path / "metrics.csv"
        self.config_path = self.path / "config.json"
        self.rows: list[dict] = []

    def check_can_start(self, resume: bool) -> None:
        """Refuse (UsageError) a new run into a non-empty directory, or a resume with nothing to resume."""
        if resume:
            if not (self.last_checkpoint.is_file() or self.config_path.is_file()):
                raise UsageError(f"--resume: {self.path} holds no run to resume (no {self.last_checkpoint.name} "
                                 f"or {self.config_path.name})")
        elif self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise UsageError(f"--out {self.path} already exists and is not empty; "
                             "pass --resume to continue that run, or choose a new directory")

    def saved_config(self, kind: str) -> dict:
        """The config of the run being resumed: from its last checkpoint, else from config.json
        (a run stopped before its first checkpoint restarts from scratch with its own config)."""
        if self.last_checkpoint.is_file():
            return read_checkpoint(self.last_checkpoint, kind)["config"]
        try:
            return json.loads(self.config_path.read_text())
        except (OSError, ValueError):
            raise UsageError(f"--resume: {self.config_path} is not readable") from None

    def resume_state(self, kind: str) -> dict | None:
        """Read last.pt (validated) and restore metrics.csv to what it held at that checkpoint.

        None when the run never reached a checkpoint: it starts again from the beginning."""
        state = read_checkpoint(self.last_checkpoint, kind) if self.last_checkpoint.is_file() else None
        self.rows = [dict(row) for row in state.get("metrics", [])] if state else []
        self._rewrite_metrics()
        return state

    def start(self, config: dict) -> None:
        """Write config.json (first, so a run killed at any later instant can be resumed)."""
        atomic_write_text(self.config_path, json.dumps({**config, **environment()}, indent=2) + "\n")
        self.checkpoints.mkdir(exist_ok=True)
        for stale in self.path.glob("**/.*.tmp"):      # temp files of writes a kill interrupted
            stale.unlink(missing_ok=True)

    def log(self, row: dict) -> None:
        """Append one row to metrics.csv (the header is written with the first row)."""
        row = {k: (float(v) if isinstance(v, torch.Tensor) else v) for k, v in row.items()}
        if self.rows and list(row) != list(self.rows[0]):
            raise ValueError("metrics rows must keep the same columns")
        self.rows.append(row)
        new_file = not self.metrics_path.exists() or len(self.rows) == 1
        with open(self.metrics_path, "w" if new_file else "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new_file:
                writer.writeheader()
            writer.writerow(row)

    def _rewrite_metrics(self) -> None:
        if not self.rows:
            self.metrics_path.unlink(missing_ok=True)
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.rows[0]))
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.metrics_path, buffer.getvalue())

    def save_checkpoint(self, kind: str, config: dict, snapshots: tuple[str, ...] = (), **state) -> None:
        """Write last.pt atomically (and `checkpoints/<name>.pt` for each snapshot name given)."""
        state["metrics"] = self.rows
        save_checkpoint(self.last_checkpoint, kind, config, **state)
        for name in snapshots:
            save_checkpoint(self.checkpoints / f"{name}.pt", kind, config, **state)

    def metric_column(self, name: str) -> list:
        return [row[name] for row in self.rows]
