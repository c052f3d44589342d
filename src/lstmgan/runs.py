"""Run directories shared by both parts: config.json, metrics.csv, checkpoints/, samples/.

    run, config, checkpoint = start_run(PalindromeConfig, values, out, resume)   # validates; writes nothing
    ... build the model and optimizers; restore them from `checkpoint` when resuming ...
    run.start(config, resolved_device="cpu")      # writes config.json, restores metrics.csv
    run.log({...})                                # one metrics.csv row (and TensorBoard scalars)
    run.save_checkpoint(kind, config, ("best",), model=..., ...)   # last.pt (+ named snapshots)

A checkpoint carries the metrics rows logged so far, so a resumed run rewrites metrics.csv
to exactly what it was when the checkpoint was taken: rows logged after it (by a run that
was then killed) are dropped, never duplicated.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from .checkpoint import atomic_write, read_checkpoint, save_checkpoint
from .config import RECORD_KEYS, Config, flag_name
from .errors import UsageError
from .version import __version__


def atomic_write_text(path: Path, text: str) -> None:
    """Write text crash-safely, like checkpoints."""
    atomic_write(path, lambda f: f.write(text.encode()))


def environment() -> dict:
    """Versions and execution settings recorded next to every resolved config."""
    return {"lstmgan_version": __version__, "torch_version": torch.__version__,
            "python_version": platform.python_version(), "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


# What a resumed run must keep to stay bit-identical: float sums depend on the thread count, the torch build and
# the vector width of the CPU's kernels.
HOST_KEYS = ("threads", "torch_version", "cpu_capability")


def merge_for_resume(saved: dict, given: dict, changeable: set[str]) -> dict:
    """The config of a resumed run: the saved one, with changeable options (epochs, device...) updated.

    Any other option given must agree with the saved run; changing the learning rate halfway,
    say, would make the run irreproducible, so it is refused.
    """
    config = dict(saved)
    for key, value in given.items():
        if key in changeable:
            config[key] = value
        elif key in saved and saved[key] != value:
            raise UsageError(f"{flag_name(key)} {value} differs from the run being resumed ({saved[key]}); "
                             f"drop it, or start a new run in another --out")
    return config


def resolve_config(config_class: type[Config], given, run: "Run", resume: bool) -> Config:
    """A validated config: the given values over the defaults, or over the saved run on --resume."""
    values = given.to_dict() if isinstance(given, Config) else dict(given)
    if resume:
        # a run saved before an option existed ran with that option's default
        saved = {**config_class.defaults(), **run.saved_config(config_class)}
        values = merge_for_resume(saved, values, config_class.changeable_keys())
    return config_class.from_dict(values).validate()


def start_run(config_class: type[Config], given, out, resume: bool,
              allow_host_change: bool = False) -> tuple["Run", Config, dict | None]:
    """Check the run directory, resolve the config and read the checkpoint to resume; nothing is written yet.

    The checkpoint is None for a new run, and for a run killed before its first checkpoint
    (which then starts again from the beginning with its saved config). A resume on another thread count,
    torch build or CPU capability is refused unless `allow_host_change`, and then recorded in config.json.
    """
    run = Run(out)
    run.check_can_start(resume)
    if resume:
        run.check_host(allow_host_change)
    config = resolve_config(config_class, given, run, resume)
    if getattr(config, "tensorboard", False):
        from .tensorboard import require_tensorboard

        require_tensorboard()
    checkpoint = run.read_resume_checkpoint(config_class.kind) if resume else None
    return run, config, checkpoint


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
        self.tensorboard = None
        self.host_changes: list[dict] = []     # resumes on another host setup, allowed and recorded
        # this piece of the run starts now: its setup (data, models) counts in its cost, as training does
        self.wall_started, self.cpu_started = time.perf_counter(), time.process_time()

    def check_can_start(self, resume: bool) -> None:
        """Refuse (UsageError) a new run into a non-empty directory, or a resume with nothing to resume."""
        if resume:
            if not (self.last_checkpoint.is_file() or self.config_path.is_file()):
                raise UsageError(f"--resume: {self.path} holds no run to resume (no {self.last_checkpoint.name} "
                                 f"or {self.config_path.name})")
        elif self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise UsageError(f"--out {self.path} already exists and is not empty; "
                             "pass --resume to continue that run, or choose a new directory")

    def saved_config(self, config_class: type[Config]) -> dict:
        """The options of the run being resumed: from its last checkpoint, else from config.json
        (a run stopped before its first checkpoint restarts from scratch with its own config)."""
        if self.last_checkpoint.is_file():
            return read_checkpoint(self.last_checkpoint, config_class.kind)["config"]
        try:
            saved = json.loads(self.config_path.read_text())
        except (OSError, ValueError):
            raise UsageError(f"--resume: {self.config_path} is not readable") from None
        return {k: v for k, v in saved.items() if k not in RECORD_KEYS and k not in config_class.derived_keys}

    def check_host(self, allow_change: bool) -> None:
        """Compare this process's HOST_KEYS with those config.json recorded; a difference is refused with one line,
        or (allowed) kept in `host_changes` for config.json."""
        try:
            saved = json.loads(self.config_path.read_text())
        except (OSError, ValueError):
            return                      # nothing recorded yet: a run killed before it wrote config.json
        now = environment()
        changed = {k: [saved[k], now[k]] for k in HOST_KEYS if k in saved and saved[k] != now[k]}
        self.host_changes = list(saved.get("host_changes", []))
        if not changed:
            return
        what = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changed.items())
        if not allow_change:
            raise UsageError(f"--resume: this run was trained with other settings ({what}); it would go on, but "
                             "not bit-identically: pass --allow-host-change to continue (recorded in config.json)")
        self.host_changes.append({"resumed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                  "changed": changed})

    def read_resume_checkpoint(self, kind: str) -> dict | None:
        """The validated last.pt (None if the run never reached one), with the metrics rows it carries."""
        state = read_checkpoint(self.last_checkpoint, kind) if self.last_checkpoint.is_file() else None
        self.rows = [dict(row) for row in state.get("metrics", [])] if state else []
        return state

    def start(self, config: Config, **derived) -> None:
        """Write config.json (first, so a run killed at any later instant can be resumed), restore metrics.csv."""
        changes = {"host_changes": self.host_changes} if self.host_changes else {}
        atomic_write_text(self.config_path, json.dumps({**config.record(**derived), **environment(), **changes},
                                                       indent=2) + "\n")
        self.checkpoints.mkdir(exist_ok=True)
        for stale in self.path.glob("**/.*.tmp"):      # temp files of writes a kill interrupted
            stale.unlink(missing_ok=True)
        self._rewrite_metrics()

    def mirror_to_tensorboard(self, step_column: str, next_step: int) -> None:
        """Also write each metrics row (and images) as TensorBoard events; events a killed run wrote
        from `next_step` on are discarded (purge_step), so no step appears twice."""
        from .tensorboard import TensorBoardMirror

        self.tensorboard = TensorBoardMirror(self.path / "tensorboard", step_column, next_step)

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
        if self.tensorboard:
            self.tensorboard.log_row(row)

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """A picture (uint8 [H, W]) for TensorBoard, when mirroring; files are written by their owners."""
        if self.tensorboard:
            self.tensorboard.log_image(tag, image, step)

    def finish(self, config: Config, final: dict) -> None:
        """Close the run's TensorBoard mirror with the hyperparameters and the final metrics."""
        if self.tensorboard:
            self.tensorboard.log_hyperparameters(config.to_dict(), final)
            self.tensorboard.close()
            self.tensorboard = None

    def _rewrite_metrics(self) -> None:
        if not self.rows:
            self.metrics_path.unlink(missing_ok=True)
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.rows[0]))
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.metrics_path, buffer.getvalue())

    def save_checkpoint(self, kind: str, config: Config, snapshots: tuple[str, ...] = (), **state) -> None:
        """Write last.pt atomically (and `checkpoints/<name>.pt` for each snapshot name given)."""
        state["metrics"] = self.rows
        save_checkpoint(self.last_checkpoint, kind, config.to_dict(), **state)
        for name in snapshots:
            save_checkpoint(self.checkpoints / f"{name}.pt", kind, config.to_dict(), **state)

    def metric_column(self, name: str) -> list:
        return [row[name] for row in self.rows]
