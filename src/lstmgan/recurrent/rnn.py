"""The vanilla recurrent network the LSTM is compared with.

    h_t = tanh(W_hx x_t + W_hh h_{t-1} + b_h),   h_0 = 0
    p   = W_ph h_T + b_p
"""

from __future__ import annotations

import torch
from torch import nn

from . import backends
from .base import RecurrentClassifier, as_sequence
from .fused import RNNFunction, rnn_inference


class VanillaRNN(RecurrentClassifier):
    """Elman RNN classifier: [B, T, input_dim] -> logits [B, num_classes]; init like `nn.RNN`.

    `backend` as for the LSTM; "per-gate" is the equation one step at a time with autograd."""

    def __init__(self, input_dim: int = 1, num_hidden: int = 128, num_classes: int = 10, backend: str = "auto"):
        super().__init__(input_dim, num_hidden, num_classes, backend)
        self.W_hx = nn.Parameter(torch.empty(num_hidden, input_dim))
        self.W_hh = nn.Parameter(torch.empty(num_hidden, num_hidden))
        self.b_h = nn.Parameter(torch.empty(num_hidden))
        self.reset_parameters()

    def final_state(self, x: torch.Tensor, backend: str) -> torch.Tensor:
        if backend == backends.PER_GATE:
            return self.forward_per_step(x)
        if backend == backends.COMPILED:
            return backends.compiled_rnn(x, self.W_hx, self.W_hh, self.b_h)
        return self.forward_fused(x)

    def forward_per_step(self, x: torch.Tensor) -> torch.Tensor:
        x = as_sequence(x, self.input_dim)
        h = x.new_zeros(x.shape[0], self.num_hidden)
        for t in range(x.shape[1]):
            h = torch.tanh(x[:, t] @ self.W_hx.T + h @ self.W_hh.T + self.b_h)
        return h

    @torch.no_grad()
    def states(self, x: torch.Tensor, steps=None) -> dict[str, torch.Tensor]:
        """The hidden state of every step (or of the 0-based `steps` alone): {"h": [B, len(steps) or T, H]}."""
        x = as_sequence(x, self.input_dim)
        keep = set(range(x.shape[1]) if steps is None else (int(t) for t in steps))
        h, kept = x.new_zeros(x.shape[0], self.num_hidden), []
        for t in range(x.shape[1]):
            h = torch.tanh(torch.addmm(self.b_h, x[:, t], self.W_hx.T).addmm_(h, self.W_hh.T))
            if t in keep:
                kept.append(h)
        return {"h": torch.stack(kept, 1)}

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        x = as_sequence(x, self.input_dim)
        if torch.is_grad_enabled() and (x.requires_grad or self.W_hh.requires_grad):
            return RNNFunction.apply(x, self.W_hx, self.W_hh, self.b_h)
        return rnn_inference(x, self.W_hx, self.W_hh, self.b_h)

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
