"""Training FLOPs per step of Part I's models, as formulas of a config: what `palindrome cost` prints, what each
registry entry declares (`ModelSpec.flops`), and the unit a study's horizon is counted in.

One step is a forward and a backward pass over one batch of B sequences of length T. What is counted, for
every model alike:

* every matrix product, as 2·m·n·k for an [m, k] × [k, n] product (a multiply and an add), forward and
  backward: the backward repeats it once for the weight's gradient, and once more for its input's when that
  input needs one (not for the input digits, nor for a recurrence's zero initial state);
* attention's QKᵀ and AV, 2·d per query-key pair each, forward and twice in the backward: T² pairs for full
  attention, T(T+1)/2 for causal (the pairs the fused CPU kernel computes; the math path also multiplies the
  masked ones, so torch's FlopCounterMode counts T² there);
* the LRU's scan x_t = λ ⊙ x_{t−1} + B u_t: per complex state unit and step, one complex multiply-add forward
  (8 real FLOPs), two backward (the state's gradient and λ's): 24 real FLOPs per unit and step in all.

Not counted, for every model: elementwise work (gate nonlinearities and products, bias adds, normalisation,
softmax, GELU, GLU, residual adds) and the optimizer's update. It is a small share everywhere here; where it
matters is wall time, which `palindrome cost` measures beside the count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class StepFlops:
    """Training FLOPs of one step, by kind of work."""

    products: int          # matrix products (what torch's FlopCounterMode counts on the per-gate and math paths)
    attention: int = 0     # QKᵀ and AV (the fused CPU attention kernel is invisible to FlopCounterMode)
    scan: int = 0          # the LRU's complex multiply-adds (elementwise ops: FlopCounterMode never counts them)

    @property
    def total(self) -> int:
        return self.products + self.attention + self.scan

    def as_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def product(m: int, n: int, k: int, input_grad: bool = True) -> int:
    """Forward and backward FLOPs of an [m, k] × [k, n] product with a trained [k, n] factor."""
    return 2 * m * n * k * (3 if input_grad else 2)


def gated_recurrence(c, gates: int) -> StepFlops:
    """An RNN-family cell with `gates` blocks of H units, each reading x_t and h_{t−1} (LSTM 4, GRU 3, RNN 1),
    then the head on h_T: W_x x_t (the digits need no gradient), W_h h_{t−1} (h_0 = 0 needs none), W_p h_T."""
    B, T, D, H, C = c.batch_size, c.input_length, c.input_dim, c.num_hidden, c.num_classes
    inputs = T * product(B, gates * H, D, input_grad=False)
    recurrent = T * product(B, gates * H, H) - 2 * B * gates * H * H
    return StepFlops(products=inputs + recurrent + product(B, C, H))


def lstm(c) -> StepFlops:
    return gated_recurrence(c, 4)


def gru(c) -> StepFlops:
    return gated_recurrence(c, 3)


def rnn(c) -> StepFlops:
    return gated_recurrence(c, 1)


def transformer(c) -> StepFlops:
    """Input projection, then per layer W_qkv, W_o and the 4× MLP over all B·T positions plus attention; the
    head reads the last position."""
    B, T, D, H, C, L = c.batch_size, c.input_length, c.input_dim, c.num_hidden, c.num_classes, c.num_layers
    positions = B * T
    layer = product(positions, 3 * H, H) + product(positions, H, H) + product(positions, 4 * H, H) \
        + product(positions, H, 4 * H)
    pairs = T * (T + 1) // 2 if c.attention == "causal" else T * T
    attention = L * 2 * (2 * B * pairs * H) * 3       # QKᵀ and AV over all heads (d·heads = H), forward + 2 grads
    return StepFlops(products=product(positions, H, D, input_grad=False) + L * layer + product(B, C, H),
                     attention=attention)


def lru(c) -> StepFlops:
    """Input projection, then per layer B (real u into N complex states: two real products), the scan, C (two
    real products back to H) and the GLU's W (H → 2H); the head reads the last step."""
    B, T, D, H, C, L = c.batch_size, c.input_length, c.input_dim, c.num_hidden, c.num_classes, c.num_layers
    N, positions = c.lru_state or H, B * T
    layer = 2 * product(positions, N, H) + 2 * product(positions, H, N) + product(positions, 2 * H, H)
    return StepFlops(products=product(positions, H, D, input_grad=False) + L * layer + product(B, C, H),
                     scan=L * 24 * B * T * N)
