"""The base of every Part I model: read a sequence, classify from the last hidden state.

`SequenceClassifier` is what every model is (the transformer and the LRU included); `RecurrentClassifier`
adds what the LSTM, the vanilla RNN and the GRU share, a recurrence run by one of several backends.

    p = W_ph h_T + b_p        (logits; softmax lives in `predict_proba`)

A subclass computes h_T with the implementation `backends.resolve` picks for the input
("compiled", "eager" or "per-gate"); every parameter starts uniform in [-1/√H, 1/√H], as in
`torch.nn.LSTM` / `torch.nn.RNN`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import backends


def as_sequence(x: torch.Tensor, input_dim: int) -> torch.Tensor:
    """Accept [B, T, input_dim], or [B, T] when input_dim == 1; return [B, T, input_dim]."""
    if x.dim() == 2 and input_dim == 1:
        x = x.unsqueeze(-1)
    if x.dim() != 3 or x.shape[-1] != input_dim:
        raise ValueError(f"expected input [batch, time, {input_dim}]"
                         f"{' or [batch, time]' if input_dim == 1 else ''}, got {list(x.shape)}")
    if x.shape[1] < 1:
        raise ValueError("input sequences need at least one time step")
    return x


class SequenceClassifier(nn.Module):
    """What every Part I model shares: logits [B, num_classes] from a sequence, the class probabilities,
    and a repr with its sizes (and the attributes named in `repr_keys`)."""

    repr_keys: tuple[str, ...] = ()

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities softmax(p). Never feed these to cross-entropy: use the logits."""
        return torch.softmax(self(x), dim=-1)

    def extra_repr(self) -> str:
        return ", ".join([f"input_dim={self.input_dim}", f"num_hidden={self.num_hidden}",
                          f"num_classes={self.num_classes}"] + [f"{k}={getattr(self, k)!r}" for k in self.repr_keys])


class RecurrentClassifier(SequenceClassifier):
    """[B, T, input_dim] -> logits [B, num_classes] from h_T; subclasses define `final_state`."""

    repr_keys = ("backend",)

    has_kernel = True     # the compiled C++ kernel implements this recurrence (backend "compiled")

    def __init__(self, input_dim: int, num_hidden: int, num_classes: int, backend: str):
        super().__init__()
        self.input_dim, self.num_hidden, self.num_classes = input_dim, num_hidden, num_classes
        self.backend = backends.check(backend)
        self.W_ph = nn.Parameter(torch.empty(num_classes, num_hidden))
        self.b_p = nn.Parameter(torch.empty(num_classes))

    def final_state(self, x: torch.Tensor, backend: str) -> torch.Tensor:
        """h_T [B, H] of x [B, T, D], computed by `backend`."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_sequence(x, self.input_dim)
        h = self.final_state(x, backends.resolve(self.backend, x, self.has_kernel))
        return F.linear(h, self.W_ph, self.b_p)          # p = W_ph h_T + b_p

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.num_hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)
