"""A small transformer encoder that classifies a sequence from its last position (Part I's attention model).

Where the LSTM carries one digit through T steps of a state, attention looks the first digit up directly:
every position reads every other in one step, so memory over T costs no depth, only T² score work.

    h_0     = W_in x + b_in (+ PE)                        input projection (+ sinusoidal positions)
    a       = h + Attn(LN(h))                             pre-norm self-attention block, residual
    h'      = a + W_2 GELU(W_1 LN(a) + b_1) + b_2         pre-norm 4x MLP block, residual
    p       = W_head LN(h_L[T]) + b_head                  logits from the last position

    Attn(z) = W_o concat_heads(softmax(q kᵀ / √d + M) v),  q, k, v = W_q z, W_k z, W_v z

Attention (`attention`):
    "full"        M = 0: every position reads every other (bidirectional);
    "causal"      M_{tj} = −∞ for j > t: position t reads positions 1..t only, so its representation never depends
                  on a later token. The read-out is the last position, which still reads the whole sequence.

Positions (`position`):
    "sinusoidal"  PE(t, 2i) = sin(t / 10000^{2i/H}),  PE(t, 2i+1) = cos(t / 10000^{2i/H})   (Vaswani et al. 2017),
                  added once to h_0;
    "rope"        q and k of every head rotated by position: each pair (z_{2i}, z_{2i+1}) of position t is turned
                  by the angle t·θ_i, θ_i = 10000^{-2i/d}, so q_m·k_n depends on m − n only (Su et al. 2021);
    "random"      randomised positions (Ruoss et al. 2023): the same PE, at positions p_0 < ... < p_{T−1} instead of
                  0..T−1. Training draws them afresh at every forward, a sorted sample without replacement from
                  0..L−1 (L = `position_range` >= T), from torch's global RNG; evaluation spreads them evenly,
                  p_t = round(t (L − 1) / (T − 1)) for t = 0..T−1, so it is deterministic. Training at a short T
                  already visits every position in 0..L−1, so a longer test T (up to L) meets no unseen encoding;
    "none"        no position at all: with full attention the last position sees the other positions as a set.
The encodings are computed for any T on the fly: no learned table ("random" needs T <= L).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SequenceClassifier, as_sequence

POSITIONS = ("sinusoidal", "rope", "random", "none")
ATTENTIONS = ("full", "causal")
BASE = 10000.0   # the wavelength scale of both encodings, as in both papers


def frequencies(width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """ω_i = BASE^{-2i/width} for i = 0..⌈width/2⌉ − 1: one frequency per (sin, cos) or rotated pair."""
    return BASE ** (-torch.arange(0, width, 2, device=device, dtype=dtype) / width)


def angles(positions: torch.Tensor, width: int, dtype: torch.dtype) -> torch.Tensor:
    """t·ω_i [T, ⌈width/2⌉] in `dtype`, or float32 if that is narrower: half precision loses the phase by t ≈ 1000."""
    dtype = torch.promote_types(dtype, torch.float32)
    return positions.to(dtype)[:, None] * frequencies(width, positions.device, dtype)


def sinusoidal_encoding(length: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """PE [T, width] at positions 0..T−1 (see `encode_positions`)."""
    return encode_positions(torch.arange(length, device=device), width, dtype)


def encode_positions(positions: torch.Tensor, width: int, dtype: torch.dtype) -> torch.Tensor:
    """PE [T, width] at `positions` [T]: PE(t, 2i) = sin(t·ω_i), PE(t, 2i+1) = cos(t·ω_i); an odd width drops
    the last cosine."""
    phase = angles(positions, width, dtype)
    return torch.stack([phase.sin(), phase.cos()], dim=-1).flatten(-2)[:, :width].to(dtype)


def random_positions(length: int, position_range: int, training: bool, device: torch.device) -> torch.Tensor:
    """Positions [T] for "random": sorted, distinct, in 0..L−1; drawn (training) or evenly spread (evaluation)."""
    if length > position_range:
        raise ValueError(f"position 'random' places T = {length} tokens at distinct positions in "
                         f"0..{position_range - 1}: position_range {position_range} must be >= T")
    if training:   # drawn on the CPU from the global RNG, so a seed gives the same positions on any device
        return torch.randperm(position_range)[:length].sort().values.to(device)
    t = torch.arange(length, device=device)      # p_t = ⌊t (L − 1) / (T − 1) + ½⌋ in integers: exact on any device
    return (2 * t * (position_range - 1) + length - 1) // (2 * max(length - 1, 1))


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
    """Multi-head self-attention over all positions (or, `causal`, the earlier ones), optionally with rotary
    positions on q and k."""

    def __init__(self, width: int, num_heads: int, rotary: bool, causal: bool = False):
        super().__init__()
        self.num_heads, self.rotary, self.causal = num_heads, rotary, causal
        self.qkv = nn.Linear(width, 3 * width)      # W_q, W_k, W_v in one matmul
        self.out = nn.Linear(width, width)          # W_o

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        B, T, H = z.shape
        # [B, T, 3H] -> three [B, heads, T, d]: the heads become a batch dimension for the attention kernel
        q, k, v = self.qkv(z).view(B, T, 3, self.num_heads, H // self.num_heads).permute(2, 0, 3, 1, 4)
        if self.rotary:
            positions = torch.arange(T, device=z.device)
            q, k = rotate(q, positions), rotate(k, positions)
        # softmax(q kᵀ / √d + M) v, M = 0 or the causal mask. On CPU (float32 and float64) torch dispatches to
        # `_scaled_dot_product_flash_attention_for_cpu` (SDPBackend.FLASH_ATTENTION): blocks of keys with an online
        # softmax, so neither pass holds the [T, T] score matrix; on CUDA torch picks flash/efficient/cuDNN itself.
        # `is_causal` is the mask M_{tj} = −∞ for j > t without materialising it.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
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

    def __init__(self, width: int, num_heads: int, rotary: bool, causal: bool = False):
        super().__init__()
        self.attention_norm = nn.LayerNorm(width)
        self.attention = SelfAttention(width, num_heads, rotary, causal)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = MLP(width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attention(self.attention_norm(h))    # a  = h + Attn(LN(h))
        return h + self.mlp(self.mlp_norm(h))             # h' = a + MLP(LN(a))


class Transformer(SequenceClassifier):
    """Encoder classifier: [B, T, input_dim] (or [B, T] when input_dim == 1) -> logits [B, num_classes].

    `num_layers` pre-norm blocks of width `num_hidden` with `num_heads` heads, no dropout; the head reads the
    last position, like the recurrent models read h_T. `attention` is one of ATTENTIONS and `position` one of
    POSITIONS (see the module docstring); `position_range` is L, the range "random" positions come from.
    PyTorch's default initialisation throughout.

    Cost: time grows as T² (the scores), memory only as T (the fused attention keeps no [T, T] matrix): a
    training step of the default size at batch 100 grew the CPU process by ~1.0 GiB at T = 1000 (rope: ~1.3).
    """

    repr_keys = ("num_layers", "num_heads", "position", "attention")

    def __init__(self, input_dim: int = 1, num_hidden: int = 64, num_classes: int = 10, num_layers: int = 2,
                 num_heads: int = 4, position: str = "sinusoidal", attention: str = "full",
                 position_range: int = 4096):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"unknown position {position!r}: choose one of {', '.join(POSITIONS)}")
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}: choose one of {', '.join(ATTENTIONS)}")
        if position_range < 1:
            raise ValueError(f"position_range must be a positive number of positions, got {position_range}")
        if num_hidden % num_heads:
            raise ValueError(f"num_hidden {num_hidden} is not divisible by num_heads {num_heads}")
        if position == "rope" and (num_hidden // num_heads) % 2:
            raise ValueError(f"rope rotates pairs: the head width num_hidden / num_heads = "
                             f"{num_hidden // num_heads} must be even")
        self.input_dim, self.num_hidden, self.num_classes = input_dim, num_hidden, num_classes
        self.num_layers, self.num_heads, self.position = num_layers, num_heads, position
        self.attention, self.position_range = attention, position_range
        self.embed = nn.Linear(input_dim, num_hidden)
        self.blocks = nn.ModuleList(Block(num_hidden, num_heads, position == "rope", attention == "causal")
                                    for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(num_hidden)
        self.head = nn.Linear(num_hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.final_norm(self.hidden_states(x)[:, -1]))     # p = W_head LN(h_L[T]) + b_head

    def hidden_states(self, x: torch.Tensor) -> torch.Tensor:
        """h_L [B, T, num_hidden]: the last block's output at every position (causal: position t reads 1..t)."""
        x = as_sequence(x, self.input_dim)
        h = self.embed(x)                                                   # h_0 = W_in x + b_in
        if self.position == "sinusoidal":
            h = h + sinusoidal_encoding(x.shape[1], self.num_hidden, x.device, h.dtype)   # h_0 += PE(0..T−1)
        elif self.position == "random":
            positions = random_positions(x.shape[1], self.position_range, self.training, x.device)
            h = h + encode_positions(positions, self.num_hidden, h.dtype)                 # h_0 += PE(p_0..p_{T−1})
        for block in self.blocks:
            h = block(h)
        return h
