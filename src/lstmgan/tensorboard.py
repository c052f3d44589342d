"""TensorBoard output (optional extra `lstmgan[tensorboard]`): a mirror of metrics.csv, never the source of truth.

Each metrics row becomes one scalar per numeric column at the row's step (the epoch of a
palindrome run, the iteration of a GAN run); sample grids become images; the run's
hyperparameters go in with its final metrics. A resumed run opens its writer with
`purge_step`, so events a killed run wrote after its last checkpoint are discarded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UsageError

INSTALL_HINT = "pip install 'lstmgan[tensorboard]'"


def require_tensorboard():
    """torch's SummaryWriter class, or a one-line UsageError saying how to install TensorBoard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UsageError(f"--tensorboard needs the tensorboard package: {INSTALL_HINT}") from None
    return SummaryWriter


class TensorBoardMirror:
    """Writes TensorBoard events into `log_dir`, keyed by the `step_column` of each metrics row."""

    def __init__(self, log_dir: Path, step_column: str, purge_step: int):
        self.step_column = step_column
        self.writer = require_tensorboard()(str(log_dir), purge_step=purge_step)

    def log_row(self, row: dict) -> None:
        step = int(row[self.step_column])
        for name, value in row.items():
            if name != self.step_column and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def log_image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.writer.add_image(tag, image, step, dataformats="HW")
        self.writer.flush()

    def log_hyperparameters(self, config: dict, final: dict) -> None:
        """The config beside the final metrics (TensorBoard's HPARAMS tab compares runs by them)."""
        hparams = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in config.items()}
        metrics = {f"final/{k}": float(v) for k, v in final.items() if isinstance(v, (int, float))}
        self.writer.add_hparams(hparams, metrics, run_name="hparams")

    def close(self) -> None:
        self.writer.close()
