"""A gated recurrent unit (Cho et al. 2014) written from scratch, in the LSTM's style.

Equations (h_0 = 0), for t = 1..T, as `torch.nn.GRU` computes them:

    r_t = σ(W_rx x_t + W_rh h_{t-1} + b_r)                  reset gate
    z_t = σ(W_zx x_t + W_zh h_{t-1} + b_z)                  update gate
    n_t = tanh(W_nx x_t + b_nx + r_t ⊙ (W_nh h_{t-1} + b_nh))  candidate state
    h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}
    p   = W_ph h_T + b_p                                     logits

The candidate's recurrent bias b_nh sits inside the reset gate's product, so it is kept apart
from b_nx (r and z need one bias each). Weights are stored [out, in] like `torch.nn.Linear`.

z_t is the share of the old state kept at step t, so b_z plays the LSTM forget bias's part: with
z = σ(b_z) constant, a memory decays as z^k and lasts 1 / (1 − z) steps on average.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .backends import PER_GATE
from .base import RecurrentClassifier, as_sequence

GATES = ("r", "z", "n")   # torch.nn.GRU's order


class GRU(RecurrentClassifier):
    """GRU classifier: reads [B, T, input_dim] and returns logits [B, num_classes] from h_T.

    Parameters W_rx, W_rh, b_r, W_zx, W_zh, b_z, W_nx, W_nh, b_nx, b_nh, then the head W_ph, b_p.
    `backend`: "eager" (the three gates as one block: the input term of every step in one
    GEMM, one recurrent GEMM per step; autograd does the backward), "per-gate" (the equations
    above one gate at a time) or "auto" (eager).

    Init: every parameter uniform in [-1/√H, 1/√H], as torch. The update gate's bias b_z may then be set,
    as the LSTM's forget bias is: `update_bias` b makes every unit keep σ(b) of its state per step
    (b = 3: 95%, a timescale of 1 / (1 − σ(b)) ≈ 21 steps), and `chrono_tmax` N draws chrono init (Tallec &
    Ollivier, ICLR 2018): b_z ~ log U[1, N − 1], so the timescales 1 / (1 − σ(b_z)) = 1 + e^{b_z} spread
    over [2, N].
    """

    has_kernel = False

    def __init__(self, input_dim: int = 1, num_hidden: int = 128, num_classes: int = 10, backend: str = "auto",
                 update_bias: float | None = None, chrono_tmax: int | None = None):
        super().__init__(input_dim, num_hidden, num_classes, backend)
        if update_bias is not None and not math.isfinite(update_bias):
            raise ValueError(f"update_bias must be a finite number (or None), got {update_bias}")
        if chrono_tmax is not None and (update_bias is not None or chrono_tmax < 2):
            raise ValueError("chrono init needs chrono_tmax >= 2 and no constant update_bias")
        self.update_bias, self.chrono_tmax = update_bias, chrono_tmax
        H, D = num_hidden, input_dim
        for gate in GATES:
            setattr(self, f"W_{gate}x", nn.Parameter(torch.empty(H, D)))
            setattr(self, f"W_{gate}h", nn.Parameter(torch.empty(H, H)))
        self.b_r, self.b_z = nn.Parameter(torch.empty(H)), nn.Parameter(torch.empty(H))
        self.b_nx, self.b_nh = nn.Parameter(torch.empty(H)), nn.Parameter(torch.empty(H))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        super().reset_parameters()                            # uniform, as torch.nn.GRU
        if self.update_bias is not None:
            self.b_z.fill_(self.update_bias)                  # z = σ(b): the share kept per step
        if self.chrono_tmax is not None:
            self.b_z.uniform_(1, self.chrono_tmax - 1).log_()    # b_z ~ log U[1, T_max − 1]

    def final_state(self, x: torch.Tensor, backend: str) -> torch.Tensor:
        return self.forward_per_gate(x) if backend == PER_GATE else self.forward_fused(x)

    def forward_per_gate(self, x: torch.Tensor) -> torch.Tensor:
        """h_T by the equations, one gate at a time (autograd does the backward)."""
        x = as_sequence(x, self.input_dim)
        h = x.new_zeros(x.shape[0], self.num_hidden)
        for t in range(x.shape[1]):
            h, _, _ = self.step(x[:, t], h)
        return h

    def step(self, x_t: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of the equations, one gate at a time: (h_t, r_t, z_t)."""
        r = torch.sigmoid(x_t @ self.W_rx.T + h @ self.W_rh.T + self.b_r)
        z = torch.sigmoid(x_t @ self.W_zx.T + h @ self.W_zh.T + self.b_z)
        n = torch.tanh(x_t @ self.W_nx.T + self.b_nx + r * (h @ self.W_nh.T + self.b_nh))
        return (1 - z) * n + z * h, r, z

    @torch.no_grad()
    def states(self, x: torch.Tensor, steps=None) -> dict[str, torch.Tensor]:
        """The state and the two gates of every step (or of the 0-based `steps` alone), for `inspect`:
        {"h", "r", "z"}, each [B, len(steps) or T, H]; z is the share of h_{t-1} kept at step t."""
        x = as_sequence(x, self.input_dim)
        keep = set(range(x.shape[1]) if steps is None else (int(t) for t in steps))
        h, kept = x.new_zeros(x.shape[0], self.num_hidden), {"h": [], "r": [], "z": []}
        for t in range(x.shape[1]):
            h, r, z = self.step(x[:, t], h)
            if t in keep:
                for name, value in (("h", h), ("r", r), ("z", z)):
                    kept[name].append(value)
        return {name: torch.stack(values, 1) for name, values in kept.items()}

    def fused_weights(self) -> tuple[torch.Tensor, ...]:
        """(W_x [3H, D], W_h [3H, H], b_x [3H], b_h [3H]) in gate order r, z, n; differentiable views."""
        W_x = torch.cat([getattr(self, f"W_{k}x") for k in GATES])
        W_h = torch.cat([getattr(self, f"W_{k}h") for k in GATES])
        b_x = torch.cat([self.b_r, self.b_z, self.b_nx])
        b_h = torch.cat([torch.zeros_like(self.b_r), torch.zeros_like(self.b_z), self.b_nh])
        return W_x, W_h, b_x, b_h

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """h_T with the gates as one block: the input terms of all steps first, then the recurrence."""
        x = as_sequence(x, self.input_dim)
        W_x, W_h, b_x, b_h = self.fused_weights()
        H = self.num_hidden
        inputs = torch.addmm(b_x, x.transpose(0, 1).reshape(-1, x.shape[2]), W_x.T).view(x.shape[1], x.shape[0], -1)
        h = x.new_zeros(x.shape[0], H)
        for a_x in inputs:                                        # a_x = W_x x_t + b_x, [B, 3H]
            a_h = torch.addmm(b_h, h, W_h.T)                      # a_h = W_h h_{t-1} + (0, 0, b_nh)
            rz = torch.sigmoid(a_x[:, :2 * H] + a_h[:, :2 * H])
            r, z = rz[:, :H], rz[:, H:]
            n = torch.tanh(a_x[:, 2 * H:] + r * a_h[:, 2 * H:])
            h = torch.lerp(n, h, z)                               # (1 − z) ⊙ n + z ⊙ h
        return h

    @classmethod
    def from_torch(cls, gru: nn.GRU, head: nn.Linear, backend: str = "auto") -> "GRU":
        """Copy a single-layer, batch-first `torch.nn.GRU` and its `nn.Linear` head."""
        if gru.num_layers != 1 or gru.bidirectional:
            raise ValueError("only single-layer, unidirectional nn.GRU converts")
        model = cls(gru.input_size, gru.hidden_size, head.out_features, backend=backend)
        H = gru.hidden_size
        zeros = torch.zeros(3 * H)
        b_ih = gru.bias_ih_l0.detach() if gru.bias else zeros
        b_hh = gru.bias_hh_l0.detach() if gru.bias else zeros
        with torch.no_grad():
            for k, gate in enumerate(GATES):
                rows = slice(k * H, (k + 1) * H)
                getattr(model, f"W_{gate}x").copy_(gru.weight_ih_l0[rows])
                getattr(model, f"W_{gate}h").copy_(gru.weight_hh_l0[rows])
            model.b_r.copy_(b_ih[:H] + b_hh[:H])
            model.b_z.copy_(b_ih[H:2 * H] + b_hh[H:2 * H])
            model.b_nx.copy_(b_ih[2 * H:])
            model.b_nh.copy_(b_hh[2 * H:])
            model.W_ph.copy_(head.weight)
            model.b_p.copy_(head.bias if head.bias is not None else torch.zeros(head.out_features))
        return model.to(gru.weight_ih_l0.device, gru.weight_ih_l0.dtype)

    def to_torch(self) -> tuple[nn.GRU, nn.Linear]:
        """The same network as (`nn.GRU(batch_first=True)`, `nn.Linear`)."""
        gru, head = nn.GRU(self.input_dim, self.num_hidden, batch_first=True), nn.Linear(self.num_hidden,
                                                                                          self.num_classes)
        W_x, W_h, b_x, b_h = self.fused_weights()
        with torch.no_grad():
            gru.weight_ih_l0.copy_(W_x)
            gru.weight_hh_l0.copy_(W_h)
            gru.bias_ih_l0.copy_(b_x)
            gru.bias_hh_l0.copy_(b_h)
            head.weight.copy_(self.W_ph)
            head.bias.copy_(self.b_p)
        device, dtype = self.W_ph.device, self.W_ph.dtype
        return gru.to(device, dtype), head.to(device, dtype)
