"""The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for Long Sequences").

A linear recurrence with a diagonal complex state matrix, made deep by nonlinear blocks *between* layers:

    x_k = Λ ⊙ x_{k−1} + γ ⊙ (B u_k),   x_0 = 0              state x ∈ ℂ^N, input u ∈ ℝ^H
    y_k = Re(C x_k) + D ⊙ u_k                               output y ∈ ℝ^H
    Λ   = exp(−exp(ν_log) + i·exp(θ_log))                   exponential parametrisation: |λ| = exp(−exp(ν_log)) < 1
    γ   = exp(γ_log),  γ_log initialised to log √(1 − |λ|²)  keeps E|x_k|² near E|B u|² however close |λ| is to 1

Because the recurrence is linear, x_k = Σ_{j≤k} Λ^{k−j} γ ⊙ B u_j can be evaluated without stepping through time
(`chunked_scan`); the sequential loop (`loop_scan`) is the reference. Gradients flow through both by autograd.

The model (`LRU`):
    h_0 = W_in x + b_in
    h_l = h_{l−1} + GLU(W_l GELU(LRULayer(LN(h_{l−1}))) + b_l)      GLU(a, b) = a ⊙ σ(b)
    p   = W_head LN(h_L[T]) + b_head                                logits from the last time step
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import SequenceClassifier, as_sequence

SCANS = ("auto", "chunked", "loop")
CHUNK = 16   # a longer chunk means more work per step ([L, L] kernels) but fewer recursion levels


def loop_scan(log_lambda: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """The reference: x_k = Λ ⊙ x_{k−1} + inputs_k one step at a time. inputs [B, T, N] -> states [B, T, N]."""
    decay = torch.exp(log_lambda)                                   # Λ
    state = inputs.new_zeros(inputs.shape[0], inputs.shape[2])
    states = []
    for step in inputs.unbind(1):
        state = decay * state + step                                # x_k = Λ ⊙ x_{k−1} + (γ ⊙ B u)_k
        states.append(state)
    return torch.stack(states, 1)


def chunked_scan(log_lambda: torch.Tensor, inputs: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """The states of `loop_scan` (equal up to float rounding) in O(log T) sequential steps instead of T.

    Split time into chunks of length L. Inside a chunk, from a zero start, a state is a sum of the chunk's inputs:

        local_{c,j} = Σ_{i≤j} Λ^{j−i} ⊙ inputs_{cL+i}            one [L, L] lower-triangular matmul per state unit
        x_{cL+j}    = local_{c,j} + Λ^{j+1} ⊙ x_{cL−1}            the state carried in from before the chunk

    The chunk-end states x_{cL+L−1} = local_{c,L−1} + Λ^L ⊙ x_{(c−1)L+L−1} are themselves this recurrence, with
    Λ^L in place of Λ and one step per chunk, so they come from the same function, recursively. Every power is
    Λ^k = exp(k · log Λ) with k ≥ 0, so |Λ^k| ≤ 1: nothing is divided by a vanishing Λ^k (as forming Λ^{−k} would),
    and T = 100,000 is as stable as T = 10. Work is O(T·L) per state unit.
    """
    if chunk < 2:
        raise ValueError(f"chunks of {chunk} step(s) never shorten the sequence: use chunk >= 2")
    batch, length, width = inputs.shape
    if length <= chunk:
        return within_chunk(log_lambda, inputs.unsqueeze(1)).squeeze(1)
    num_chunks = -(-length // chunk)
    padded = torch.cat([inputs, inputs.new_zeros(batch, num_chunks * chunk - length, width)], 1)   # zeros at the end
    local = within_chunk(log_lambda, padded.view(batch, num_chunks, chunk, width))     # [B, C, L, N]
    # log Λ^L, its phase wrapped into [0, 2π): unwrapped, L^depth·θ would grow until float32 lost the angle
    log_lambda_power = torch.complex(chunk * log_lambda.real, torch.remainder(chunk * log_lambda.imag, 2 * math.pi))
    ends = chunked_scan(log_lambda_power, local[:, :, -1], chunk)                      # x at each chunk's end
    carried = torch.cat([ends.new_zeros(batch, 1, width), ends[:, :-1]], 1)            # x_{cL−1}, zero for c = 0
    steps = torch.arange(1, chunk + 1, device=inputs.device, dtype=log_lambda.real.dtype)
    carry_decay = torch.exp(steps[:, None] * log_lambda)                               # Λ^{j+1} [L, N]
    states = local + carry_decay * carried[:, :, None]                                 # x_{cL+j}
    return states.reshape(batch, num_chunks * chunk, width)[:, :length]


def within_chunk(log_lambda: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """local_{c,j} = Σ_{i≤j} Λ^{j−i} ⊙ inputs_{c,i} for inputs [B, C, L, N]: states from a zero start per chunk."""
    length = inputs.shape[2]
    steps = torch.arange(length, device=inputs.device, dtype=log_lambda.real.dtype)
    lag = steps[:, None] - steps[None, :]                                              # j − i
    causal = lag >= 0
    # Λ^{j−i} where j ≥ i, 0 above the diagonal; the clamp stops exp overflowing there first (inf · 0 = nan)
    kernel = torch.exp(lag.clamp(min=0)[..., None] * log_lambda) * causal[..., None]   # [L, L, N]
    return torch.einsum("jin,bcin->bcjn", kernel, inputs)


def check_scan(scan: str) -> str:
    """`scan` itself if it is one of SCANS, else a ValueError naming them."""
    if scan not in SCANS:
        raise ValueError(f"unknown scan {scan!r}: choose one of {', '.join(SCANS)}")
    return scan


def check_ring(r_min: float, r_max: float, max_phase: float) -> None:
    """A ValueError naming the argument unless 0 <= r_min < r_max < 1 and max_phase > 0."""
    if not 0 <= r_min:
        raise ValueError(f"r_min must be >= 0 (the ring's inner radius), got {r_min}")
    if not r_max < 1:
        raise ValueError(f"r_max must be < 1: |λ| < 1 keeps the recurrence stable, got {r_max}")
    if not r_min < r_max:
        raise ValueError(f"r_min must be below r_max (0 <= r_min < r_max < 1), got r_min {r_min}, r_max {r_max}")
    if not (max_phase > 0 and math.isfinite(max_phase)):
        raise ValueError(f"max_phase must be a positive angle (radians), got {max_phase}")


def resolve_scan(scan: str, device: torch.device) -> str:
    """"auto" -> "loop" on CPU, "chunked" elsewhere; "loop" and "chunked" pass through.

    Measured on one CPU thread at batch 100, state 64: the loop's per-step tensors [B, N] stay in cache and its
    forward and backward beat the chunked scan (which makes several passes over [B, T, N] in memory) at T = 35
    and at T = 1000. On a GPU the loop pays a few kernel launches per step, T·(forward + backward) in all, while
    the chunked scan launches a few dozen kernels whatever T is.
    """
    if check_scan(scan) == "auto":
        return "loop" if device.type == "cpu" else "chunked"
    return scan


class LRULayer(nn.Module):
    """One linear recurrent unit: u [B, T, H] -> y [B, T, H] through a complex diagonal state of size N.

    Parameters (real tensors; complex numbers are assembled in `forward`): ν_log, θ_log, γ_log [N];
    B_re, B_im [N, H]; C_re, C_im [H, N]; D [H].

    Initialisation as in the paper's appendix A: "ring init" draws λ uniformly over the area of the ring
    r_min ≤ |λ| ≤ r_max, 0 ≤ r_min < r_max < 1 (|λ|² uniform on [r_min², r_max²]), with phase arg λ uniform on
    [0, max_phase];
    B ~ 𝒩(0, 1/(2H)) per real and imaginary part, so B u has unit variance for unit-variance u;
    C ~ 𝒩(0, 1/N) per part; D ~ 𝒩(0, 1).
    """

    def __init__(self, width: int, state_dim: int, r_min: float = 0.9, r_max: float = 0.999,
                 max_phase: float = 2 * math.pi):
        super().__init__()
        check_ring(r_min, r_max, max_phase)
        if state_dim < 1:
            raise ValueError(f"state_dim must be a positive number of complex state units, got {state_dim}")
        self.width, self.state_dim = width, state_dim
        self.r_min, self.r_max, self.max_phase = r_min, r_max, max_phase
        self.nu_log = nn.Parameter(torch.empty(state_dim))
        self.theta_log = nn.Parameter(torch.empty(state_dim))
        self.gamma_log = nn.Parameter(torch.empty(state_dim))
        self.B_re = nn.Parameter(torch.empty(state_dim, width))
        self.B_im = nn.Parameter(torch.empty(state_dim, width))
        self.C_re = nn.Parameter(torch.empty(width, state_dim))
        self.C_im = nn.Parameter(torch.empty(width, state_dim))
        self.D = nn.Parameter(torch.empty(width))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # |λ|² in (r_min², r_max²]: never 0, whose log Λ = −∞ would turn 0 · log Λ into nan in the chunked scan
        radius_squared = self.r_max ** 2 - torch.rand(self.state_dim) * (self.r_max ** 2 - self.r_min ** 2)
        self.nu_log.copy_(torch.log(-0.5 * torch.log(radius_squared)))     # |λ| = exp(−exp(ν_log)) = radius
        self.theta_log.copy_(torch.log(self.max_phase * (1 - torch.rand(self.state_dim))))   # θ in (0, max_phase]
        self.gamma_log.copy_(0.5 * torch.log1p(-radius_squared))           # γ = √(1 − |λ|²)
        nn.init.normal_(self.B_re, std=1 / math.sqrt(2 * self.width))
        nn.init.normal_(self.B_im, std=1 / math.sqrt(2 * self.width))
        nn.init.normal_(self.C_re, std=1 / math.sqrt(self.state_dim))
        nn.init.normal_(self.C_im, std=1 / math.sqrt(self.state_dim))
        nn.init.normal_(self.D)

    def recurrence_parameters(self) -> list[nn.Parameter]:
        """ν_log, θ_log, γ_log, B_re, B_im: the set the paper trains at a reduced learning rate.

        Λ is applied T times, so a step in ν or θ moves the state's late terms T-fold; γ and B scale what enters it.
        """
        return [self.nu_log, self.theta_log, self.gamma_log, self.B_re, self.B_im]

    def log_lambda(self) -> torch.Tensor:
        """log Λ = −exp(ν_log) + i·exp(θ_log) [N] (complex): every power Λ^k is exp(k log Λ)."""
        return torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log))

    def forward(self, u: torch.Tensor, scan: str = "auto") -> torch.Tensor:
        """u [B, T, H] -> y [B, T, H], the states computed by `scan` (see `resolve_scan`)."""
        gamma = torch.exp(self.gamma_log)[:, None]
        # γ ⊙ (B u) as two real matmuls: u is real, so a complex matmul would waste half its work on zeros
        inputs = torch.complex(u @ (gamma * self.B_re).T, u @ (gamma * self.B_im).T)   # [B, T, N]
        scan_states = chunked_scan if resolve_scan(scan, u.device) == "chunked" else loop_scan
        states = scan_states(self.log_lambda(), inputs)
        # Re(C x) = C_re Re(x) − C_im Im(x): the imaginary part of C x is never needed
        return states.real @ self.C_re.T - states.imag @ self.C_im.T + self.D * u     # y = Re(C x) + D ⊙ u

    def extra_repr(self) -> str:
        return (f"width={self.width}, state_dim={self.state_dim}, r_min={self.r_min}, r_max={self.r_max}, "
                f"max_phase={self.max_phase:.4g}")


class LRUBlock(nn.Module):
    """Residual block: h + GLU(W GELU(LRU(LN(h))) + b). The recurrence is linear, so all nonlinearity lives here."""

    def __init__(self, width: int, state_dim: int, r_min: float, r_max: float, max_phase: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.lru = LRULayer(width, state_dim, r_min, r_max, max_phase)
        self.gated = nn.Linear(width, 2 * width)     # value and gate halves of the GLU

    def forward(self, h: torch.Tensor, scan: str) -> torch.Tensor:
        y = F.gelu(self.lru(self.norm(h), scan))
        return h + F.glu(self.gated(y), dim=-1)      # GLU(a, b) = a ⊙ σ(b)


class LRU(SequenceClassifier):
    """Deep LRU classifier: [B, T, input_dim] (or [B, T] when input_dim == 1) -> logits [B, num_classes].

    `num_layers` blocks of width `num_hidden`, each with a state of `state_dim` complex units (default
    num_hidden); the head reads the last time step. `scan` is "loop" (the reference), "chunked" (O(log T)
    sequential steps) or "auto" (loop on CPU, chunked elsewhere: see `resolve_scan`); all give the same numbers
    to float rounding, and it may be changed on a built model. `r_min`, `r_max`, `max_phase`: every layer's ring
    init (see `LRULayer`; 0 <= r_min < r_max < 1, max_phase > 0, else a ValueError). `recurrence_parameters()`
    lists the parameters the paper trains at a reduced learning rate.
    """

    repr_keys = ("num_layers", "state_dim", "scan")

    def __init__(self, input_dim: int = 1, num_hidden: int = 64, num_classes: int = 10, num_layers: int = 2,
                 state_dim: int | None = None, r_min: float = 0.9, r_max: float = 0.999,
                 max_phase: float = 2 * math.pi, scan: str = "auto"):
        super().__init__()
        check_ring(r_min, r_max, max_phase)
        self.input_dim, self.num_hidden, self.num_classes = input_dim, num_hidden, num_classes
        self.num_layers, self.scan = num_layers, check_scan(scan)
        self.state_dim = num_hidden if state_dim is None else state_dim   # N, tied to the width H by default
        self.embed = nn.Linear(input_dim, num_hidden)
        self.blocks = nn.ModuleList(LRUBlock(num_hidden, self.state_dim, r_min, r_max, max_phase)
                                    for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(num_hidden)
        self.head = nn.Linear(num_hidden, num_classes)

    def recurrence_parameters(self) -> list[nn.Parameter]:
        """Every layer's ν_log, θ_log, γ_log, B_re, B_im (see `LRULayer.recurrence_parameters`), e.g. for an
        optimizer parameter group with a smaller learning rate; every other parameter is in `parameters()` only."""
        return [p for block in self.blocks for p in block.lru.recurrence_parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(as_sequence(x, self.input_dim))         # h_0 = W_in x + b_in
        for block in self.blocks:
            h = block(h, self.scan)
        return self.head(self.final_norm(h[:, -1]))            # p = W_head LN(h_L[T]) + b_head
