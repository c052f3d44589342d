"""The vanilla recurrent network the LSTM is compared with.

    h_t = tanh(W_hx x_t + W_hh h_{t-1} + b_h),   h_0 = 0
    p   = W_ph h_T + b_p
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import backends
from .fused import RNNFunction, rnn_inference
from .lstm import as_sequence


class VanillaRNN(nn.Module):
    """Elman RNN classifier: [B, T, input_dim] -> logits [B, num_classes]; init like `nn.RNN`."""

    def __init__(self, input_dim: int = 1, num_hidden: int = 128, num_classes: int = 10, backend: str = "auto"):
        super().__init__()
        self.input_dim, self.num_hidden, self.num_classes = input_dim, num_hidden, num_classes
        self.backend = backends.check(backend)
        self.W_hx = nn.Parameter(torch.empty(num_hidden, input_dim))
        self.W_hh = nn.Parameter(torch.empty(num_hidden, num_hidden))
        self.b_h = nn.Parameter(torch.empty(num_hidden))
        self.W_ph = nn.Parameter(torch.empty(num_classes, num_hidden))
        self.b_p = nn.Parameter(torch.empty(num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.num_hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_sequence(x, self.input_dim)
        backend = backends.resolve(self.backend, x)
        if backend == "per-gate":
            h = self.forward_per_step(x)
        elif backend == "compiled":
            h = backends.compiled_rnn(x, self.W_hx, self.W_hh, self.b_h)
        else:
            h = self.forward_fused(x)
        return F.linear(h, self.W_ph, self.b_p)

    def forward_per_step(self, x: torch.Tensor) -> torch.Tensor:
        x = as_sequence(x, self.input_dim)
        h = x.new_zeros(x.shape[0], self.num_hidden)
        for t in range(x.shape[1]):
            h = torch.tanh(x[:, t] @ self.W_hx.T + h @ self.W_hh.T + self.b_h)
        return h

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        x = as_sequence(x, self.input_dim)
        if torch.is_grad_enabled() and (x.requires_grad or self.W_hh.requires_grad):
            return RNNFunction.apply(x, self.W_hx, self.W_hh, self.b_h)
        return rnn_inference(x, self.W_hx, self.W_hh, self.b_h)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self(x), dim=-1)

    @classmethod
    def from_torch(cls, rnn: nn.RNN, head: nn.Linear, backend: str = "auto") -> "VanillaRNN":
        model = cls(rnn.input_size, rnn.hidden_size, head.out_features, backend=backend)
        with torch.no_grad():
            model.W_hx.copy_(rnn.weight_ih_l0)
            model.W_hh.copy_(rnn.weight_hh_l0)
            model.b_h.copy_(rnn.bias_ih_l0 + rnn.bias_hh_l0)
            model.W_ph.copy_(head.weight)
            model.b_p.copy_(head.bias)
        return model

    def extra_repr(self) -> str:
        return (f"input_dim={self.input_dim}, num_hidden={self.num_hidden}, num_classes={self.num_classes}, "
                f"backend={self.backend!r}")
