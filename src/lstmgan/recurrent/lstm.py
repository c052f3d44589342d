"""A long short-term memory network written from scratch, with the course template's names.

Equations (h_0 = c_0 = 0), for t = 1..T:

    g_t = tanh(W_gx x_t + W_gh h_{t-1} + b_g)     candidate cell
    i_t = σ(W_ix x_t + W_ih h_{t-1} + b_i)         input gate
    f_t = σ(W_fx x_t + W_fh h_{t-1} + b_f)         forget gate
    o_t = σ(W_ox x_t + W_oh h_{t-1} + b_o)         output gate
    c_t = g_t ⊙ i_t + c_{t-1} ⊙ f_t
    h_t = tanh(c_t) ⊙ o_t
    p   = W_ph h_T + b_p                           logits (softmax lives in `predict_proba`)

Note the template's naming: `W_ih` is the *input gate's* recurrent weight, not torch's
`weight_ih`. Weights are stored [out, in] like `torch.nn.Linear`, so `W_gx x` is
`x @ W_gx.T` on a batch.
"""

from __future__ import annotations

import torch
from torch import nn

from . import backends
from .base import RecurrentClassifier, as_sequence
from .fused import LSTMFunction, lstm_inference

GATES = ("i", "f", "o", "g")   # fused order: one sigmoid covers i, f, o


def chrono_tmax(setting: str, input_length: int) -> int | None:
    """T_max of a 'chrono' / 'chrono:N' forget-bias setting (the input length by default); None if malformed."""
    name, _, tmax = setting.strip().lower().partition(":")
    if name != "chrono":
        return None
    if not tmax:
        return max(2, input_length)
    return int(tmax) if tmax.isdigit() and int(tmax) >= 2 else None


class LSTM(RecurrentClassifier):
    """LSTM classifier: reads [B, T, input_dim] and returns logits [B, num_classes] from h_T.

    The seed's parameters: W_gx, W_gh, b_g, W_ix, W_ih, b_i, W_fx, W_fh, b_f, W_ox, W_oh, b_o
    (stored [out, in] like nn.Linear), then the head W_ph, b_p.

    `backend` picks the implementation of the recurrence over the same parameters:
    "compiled" (a C++ kernel), "eager" (all gates as one block, hand-written backward
    through time), "per-gate" (the equations above, one gate at a time, with autograd), or
    "auto" (compiled on CPU where it builds, else eager). All agree to float precision.

    `bptt_segment` k (compiled backend, training): checkpointed backpropagation through time,
    keeping (c, h) every k steps and recomputing each segment's gates in the backward; memory
    O(T/k + k) instead of O(T) for one more forward pass. None: every state is kept.

    Init: every weight and bias uniform in [-1/√H, 1/√H], as `torch.nn.LSTM` does;
    `forget_bias` (e.g. 1.0) then sets b_f to a constant so the cell starts by remembering,
    and `chrono_tmax` N instead draws chrono init (Tallec & Ollivier, ICLR 2018):
    b_f ~ log(U[1, N − 1]), b_i = −b_f, forgetting time scales spread up to N steps.
    """

    def __init__(self, input_dim: int = 1, num_hidden: int = 128, num_classes: int = 10,
                 forget_bias: float | None = None, backend: str = "auto", chrono_tmax: int | None = None,
                 bptt_segment: int | None = None):
        super().__init__(input_dim, num_hidden, num_classes, backend)
        if chrono_tmax is not None and (forget_bias is not None or chrono_tmax < 2):
            raise ValueError("chrono init needs T_max >= 2 and no constant forget_bias")
        if bptt_segment is not None and bptt_segment < 1:
            raise ValueError("bptt_segment must be a positive number of steps (or None)")
        self.forget_bias, self.chrono_tmax = forget_bias, chrono_tmax
        self.bptt_segment = bptt_segment
        H, D = num_hidden, input_dim
        for gate in ("g", "i", "f", "o"):
            setattr(self, f"W_{gate}x", nn.Parameter(torch.empty(H, D)))
            setattr(self, f"W_{gate}h", nn.Parameter(torch.empty(H, H)))    # for gate i: W_ih
            setattr(self, f"b_{gate}", nn.Parameter(torch.empty(H)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()                   # uniform, as torch.nn.LSTM
        if self.forget_bias is not None:
            nn.init.constant_(self.b_f, self.forget_bias)
        if self.chrono_tmax is not None:
            with torch.no_grad():   # drawn after the uniform init, so every other parameter keeps it
                self.b_f.uniform_(1, self.chrono_tmax - 1).log_()    # b_f ~ log U[1, T_max − 1]
                self.b_i.copy_(-self.b_f)                            # b_i = −b_f

    def recurrent_weight(self, gate: str) -> nn.Parameter:
        return getattr(self, f"W_{gate}h")

    def fused_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_x [4H, D], W_h [4H, H], b [4H]) in gate order i, f, o, g; differentiable views."""
        W_x = torch.cat([getattr(self, f"W_{k}x") for k in GATES])
        W_h = torch.cat([self.recurrent_weight(k) for k in GATES])
        b = torch.cat([getattr(self, f"b_{k}") for k in GATES])
        return W_x, W_h, b

    def final_state(self, x: torch.Tensor, backend: str) -> torch.Tensor:
        if backend == backends.PER_GATE:
            return self.forward_per_gate(x)
        if backend == backends.COMPILED:
            return backends.compiled_lstm(x, *self.fused_weights(), segment=self.bptt_segment)
        return self.forward_fused(x)

    def forward_per_gate(self, x: torch.Tensor) -> torch.Tensor:
        """h_T by the equations, one gate at a time (autograd does the backward)."""
        x = as_sequence(x, self.input_dim)
        h = x.new_zeros(x.shape[0], self.num_hidden)
        c = torch.zeros_like(h)
        for t in range(x.shape[1]):
            x_t = x[:, t]
            g = torch.tanh(x_t @ self.W_gx.T + h @ self.W_gh.T + self.b_g)
            i = torch.sigmoid(x_t @ self.W_ix.T + h @ self.W_ih.T + self.b_i)
            f = torch.sigmoid(x_t @ self.W_fx.T + h @ self.W_fh.T + self.b_f)
            o = torch.sigmoid(x_t @ self.W_ox.T + h @ self.W_oh.T + self.b_o)
            c = g * i + c * f
            h = torch.tanh(c) * o
        return h

    @torch.no_grad()
    def states(self, x: torch.Tensor, steps=None) -> dict[str, torch.Tensor]:
        """The gates and states of every step (or of the 0-based `steps` alone) by the equations above:
        {"i", "f", "o", "g", "c", "h"} -> [B, len(steps) or T, H]. For looking inside, not for training."""
        x = as_sequence(x, self.input_dim)
        keep = set(range(x.shape[1]) if steps is None else (int(t) for t in steps))
        W_x, W_h, b = self.fused_weights()
        H = self.num_hidden
        h = x.new_zeros(x.shape[0], H)
        c = torch.zeros_like(h)
        kept: dict[str, list] = {k: [] for k in ("i", "f", "o", "g", "c", "h")}
        for t in range(x.shape[1]):
            a = torch.addmm(b, x[:, t], W_x.T).addmm_(h, W_h.T)
            i, f, o = torch.sigmoid(a[:, :3 * H]).split(H, dim=1)
            g = torch.tanh(a[:, 3 * H:])
            c = g * i + c * f
            h = torch.tanh(c) * o
            if t in keep:
                for name, value in zip(("i", "f", "o", "g", "c", "h"), (i, f, o, g, c, h)):
                    kept[name].append(value)
        return {name: torch.stack(values, 1) for name, values in kept.items()}

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """h_T with fused gates; hand-written BPTT when gradients are needed."""
        x = as_sequence(x, self.input_dim)
        W_x, W_h, b = self.fused_weights()
        if torch.is_grad_enabled() and (x.requires_grad or W_x.requires_grad):
            return LSTMFunction.apply(x, W_x, W_h, b)
        return lstm_inference(x, W_x, W_h, b)

    @classmethod
    def from_torch(cls, lstm: nn.LSTM, head: nn.Linear, backend: str = "auto") -> "LSTM":
        """Copy a single-layer, batch-first `torch.nn.LSTM` and its `nn.Linear` head."""
        if lstm.num_layers != 1 or lstm.bidirectional or lstm.proj_size:
            raise ValueError("only single-layer, unidirectional nn.LSTM without projection converts")
        model = cls(lstm.input_size, lstm.hidden_size, head.out_features, backend=backend)
        H = lstm.hidden_size
        torch_order = ("i", "f", "g", "o")
        bias = torch.zeros(4 * H)
        if lstm.bias:
            bias = lstm.bias_ih_l0.detach() + lstm.bias_hh_l0.detach()
        with torch.no_grad():
            for k, gate in enumerate(torch_order):
                rows = slice(k * H, (k + 1) * H)
                getattr(model, f"W_{gate}x").copy_(lstm.weight_ih_l0[rows])
                model.recurrent_weight(gate).copy_(lstm.weight_hh_l0[rows])
                getattr(model, f"b_{gate}").copy_(bias[rows])
            model.W_ph.copy_(head.weight)
            model.b_p.copy_(head.bias if head.bias is not None else torch.zeros(head.out_features))
        return model.to(lstm.weight_ih_l0.device, lstm.weight_ih_l0.dtype)

    def to_torch(self) -> tuple[nn.LSTM, nn.Linear]:
        """The same network as (`nn.LSTM(batch_first=True)`, `nn.Linear`); biases go in bias_ih."""
        lstm = nn.LSTM(self.input_dim, self.num_hidden, batch_first=True)
        head = nn.Linear(self.num_hidden, self.num_classes)
        torch_order = ("i", "f", "g", "o")
        with torch.no_grad():
            lstm.weight_ih_l0.copy_(torch.cat([getattr(self, f"W_{k}x") for k in torch_order]))
            lstm.weight_hh_l0.copy_(torch.cat([self.recurrent_weight(k) for k in torch_order]))
            lstm.bias_ih_l0.copy_(torch.cat([getattr(self, f"b_{k}") for k in torch_order]))
            lstm.bias_hh_l0.zero_()
            head.weight.copy_(self.W_ph)
            head.bias.copy_(self.b_p)
        device, dtype = self.W_ph.device, self.W_ph.dtype
        return lstm.to(device, dtype), head.to(device, dtype)
