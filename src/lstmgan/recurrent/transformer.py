"""A small transformer encoder that classifies a sequence from its last position (Part I's attention model).

Where the LSTM carries one digit through T steps of a state, attention looks the first digit up directly:
every position reads every other in one step, so memory over T costs no depth, only T² score work.

    h_0     = W_in x + b_in (+ PE)                        input projection (+ sinusoidal positions)
    a       = h + Attn(LN(h))                             pre-norm self-attention block, residual
    h'      = a + W_2 GELU(W_1 LN(a) + b_1) + b_2         pre-norm 4x MLP block, residual
    p       = W_head LN(h_L[T]) + b_head                  logits from the last position

    Attn(z) = W_o concat_heads(softmax(q kᵀ / √d) v),  q, k, v = W_q z, W_k z, W_v z   (no mask: bidirectional)

Positions (`position`):
    "sinusoidal"  PE(t, 2i) = sin(t / 10000^{2i/H}),  PE(t, 2i+1) = cos(t / 10000^{2i/H})   (Vaswani et al. 2017),
                  added once to h_0;
    "rope"        q and k of every head rotated by position: each pair (z_{2i}, z_{2i+1}) of position t is turned
                  by the angle t·θ_i, θ_i = 10000^{-2i/d}, so q_m·k_n depends on m − n only (Su et al. 2021);
    "none"        no position at all: the last position sees the other positions as a set.
Both encodings are computed for any T on the fly: no maximum length, no learned table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .classifier import SequenceClassifier, as_sequence

POSITIONS = ("sinusoidal", "rope", "none")
BASE = 10000.0   # the wavelength scale of both encodings, as in both papers


def frequencies(width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """ω_i = BASE^{-2i/width} for i = 0..⌈width/2⌉ − 1: one frequency per (sin, cos) or rotated pair."""
    return BASE ** (-torch.arange(0, width, 2, device=device, dtype=dtype) / width)


def angles(positions: torch.Tensor, width: int, dtype: torch.dtype) -> torch.Tensor:
    """t·ω_i [T, ⌈width/2⌉] in `dtype`, or float32 if that is narrower: half precision loses the phase by t ≈ 1000."""
    dtype = torch.promote_types(dtype, torch.float32)
    return positions.to(dtype)[:, None] * frequencies(width, positions.device, dtype)


def sinusoidal_encoding(length: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """PE [T, width]: PE(t, 2i) = sin(t·ω_i), PE(t, 2i+1) = cos(t·ω_i); an odd width drops the last cosine."""
    phase = angles(torch.arange(length, device=device), width, dtype)
    return torch.stack([phase.sin(), phase.cos()], dim=-1).flatten(-2)[:, :width].to(dtype)


def rotate(z: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """RoPE: z [..., T, d] (d even) with each pair (z_{2i}, z_{2i+1}) at position t turned by t·θ_i.

        (z_{2i}, z_{2i+1}) -> (z_{2i} cos tθ_i − z_{2i+1} sin tθ_i,  z_{2i} sin tθ_i + z_{2i+1} cos tθ_i)

    A rotation by mθ against one by nθ leaves a dot product that sees only (m − n)θ, hence relative positions.
    """
    phase = angles(positions, z.shape[-1], z.dtype)
    cos, sin = phase.cos().to(z.dtype), phase.sin().to(z.dtype)
    even, odd = z[..., 0::2], z[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


class SelfAttention(nn.Module):
    """Multi-head self-attention over all positions, optionally with rotary positions on q and k."""

    def __init__(self, width: int, num_heads: int, rotary: bool):
        super().__init__()
        self.num_heads, self.rotary = num_heads, rotary
        self.qkv = nn.Linear(width, 3 * width)      # W_q, W_k, W_v in one matmul
        self.out = nn.Linear(width, width)          # W_o

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        B, T, H = z.shape
        # [B, T, 3H] -> three [B, heads, T, d]: the heads become a batch dimension for the attention kernel
        q, k, v = self.qkv(z).view(B, T, 3, self.num_heads, H // self.num_heads).permute(2, 0, 3, 1, 4)
        if self.rotary:
            positions = torch.arange(T, device=z.device)
            q, k = rotate(q, positions), rotate(k, positions)
        # softmax(q kᵀ / √d) v without a mask (bidirectional). On CPU (float32 and float64) torch dispatches to
        # `_scaled_dot_product_flash_attention_for_cpu` (SDPBackend.FLASH_ATTENTION): blocks of keys with an online
        # softmax, so neither pass holds the [T, T] score matrix; on CUDA torch picks flash/efficient/cuDNN itself.
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(B, T, H))


class MLP(nn.Module):
    """Position-wise W_2 GELU(W_1 z + b_1) + b_2 with a 4x wider hidden layer."""

    def __init__(self, width: int):
        super().__init__()
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(z)))


class Block(nn.Module):
    """Pre-norm encoder block: normalising inside the residual branch keeps the skip path an identity."""

    def __init__(self, width: int, num_heads: int, rotary: bool):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = SelfAttention(width, num_heads, rotary)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = MLP(width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attention(self.attention_norm(h))    # a  = h + Attn(LN(h))
        return h + self.mlp(self.mlp_norm(h))             # h' = a + MLP(LN(a))


class Transformer(SequenceClassifier):
    """Encoder classifier: [B, T, input_dim] (or [B, T] when input_dim == 1) -> logits [B, num_classes].

    `num_layers` pre-norm blocks of width `num_hidden` with `num_heads` heads, no dropout; the head reads the
    last position, like the recurrent models read h_T. `position` is one of POSITIONS (see the module docstring).
    PyTorch's default initialisation throughout.

    Cost: time grows as T² (the scores), memory only as T (the fused attention keeps no [T, T] matrix): a
    training step of the default size at batch 100 grew the CPU process by ~1.0 GiB at T = 1000 (rope: ~1.3).
    """

    repr_keys = ("num_layers", "num_heads", "position")

    def __init__(self, input_dim: int = 1, num_hidden: int = 64, num_classes: int = 10, num_layers: int = 2,
                 num_heads: int = 4, position: str = "sinusoidal"):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"unknown position {position!r}: choose one of {', '.join(POSITIONS)}")
        if num_hidden % num_heads:
            raise ValueError(f"num_hidden {num_hidden} is not divisible by num_heads {num_heads}")
        if position == "rope" and (num_hidden // num_heads) % 2:
            raise ValueError(f"rope rotates pairs: the head width num_hidden / num_heads = "
                             f"{num_hidden // num_heads} must be even")
        self.input_dim, self.num_hidden, self.num_classes = input_dim, num_hidden, num_classes
        self.num_layers, self.num_heads, self.position = num_layers, num_heads, position
        self.embed = nn.Linear(input_dim, num_hidden)
        self.blocks = nn.ModuleList(Block(num_hidden, num_heads, position == "rope") for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(num_hidden)
        self.head = nn.Linear(num_hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_sequence(x, self.input_dim)
        h = self.embed(x)                                                   # h_0 = W_in x + b_in
        if self.position == "sinusoidal":
            h = h + sinusoidal_encoding(x.shape[1], self.num_hidden, x.device, h.dtype)   # h_0 += PE
        for block in self.blocks:
            h = block(h)
        return self.head(self.final_norm(h[:, -1]))                        # p = W_head LN(h_L[T]) + b_head
