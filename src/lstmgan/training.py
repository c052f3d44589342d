"""Small helpers shared by the training loops of both parts (kept out of the loops themselves)."""

from __future__ import annotations

import sys

import torch
from tqdm import tqdm  # text bars: tqdm.auto needs ipywidgets in notebooks

from .errors import TrainingDiverged


class StepLog:
    """Per-step values (losses, counts) kept on the training device until a log point.

    Recording costs no host-device sync; `take()` copies the window to the CPU once and
    raises TrainingDiverged, naming the step, if any value is NaN or Inf. The unlogged
    window travels in checkpoints (`state()` / `load_state()`), so an interrupted run
    resumes with exactly the rows an uninterrupted one would write.
    """

    def __init__(self, names: list[str], capacity: int, device: torch.device):
        self.names = list(names)
        self.buffer = torch.zeros(capacity, len(names), device=device)
        self.steps: list[int] = []          # global step number of each buffered row

    def add(self, step: int, *values: torch.Tensor | float) -> None:
        if len(self.steps) == len(self.buffer):       # grow rather than fail on an odd window
            self.buffer = torch.cat([self.buffer, torch.zeros_like(self.buffer)])
        self.buffer[len(self.steps)] = torch.stack([torch.as_tensor(v, dtype=self.buffer.dtype,
                                                                    device=self.buffer.device) for v in values])
        self.steps.append(step)

    def check(self, what: str = "loss") -> torch.Tensor:
        """The buffered rows on the CPU; TrainingDiverged if a row holds NaN/Inf."""
        rows = self.buffer[:len(self.steps)].cpu()
        bad = (~torch.isfinite(rows)).any(1).nonzero()
        if len(bad):
            k = int(bad[0])
            column = self.names[int((~torch.isfinite(rows[k])).nonzero()[0])]
            raise TrainingDiverged(f"{what} {column} became {rows[k].tolist()} at iteration {self.steps[k]}")
        return rows

    def take(self) -> torch.Tensor:
        rows = self.check()
        self.steps = []
        return rows

    def state(self) -> dict:
        return {"rows": self.buffer[:len(self.steps)].cpu(), "steps": torch.tensor(self.steps, dtype=torch.long)}

    def load_state(self, state: dict) -> None:
        rows = state["rows"].to(self.buffer)
        self.steps = [int(s) for s in state["steps"]]
        self.buffer[:len(rows)] = rows


def assert_finite_parameters(*modules: torch.nn.Module, where: str) -> None:
    """Refuse to checkpoint weights that an exploding update turned into NaN or Inf."""
    for module in modules:
        for name, p in module.named_parameters():
            if not torch.isfinite(p).all():
                raise TrainingDiverged(f"weight {name} became NaN/Inf {where}")


def progress_bar(total: int, initial: int, desc: str, enabled: bool):
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, unit="it",
                dynamic_ncols=True, file=sys.stderr, leave=False)
