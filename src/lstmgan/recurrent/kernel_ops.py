"""The compiled kernel's operators as torch sees them: autograd formulas and shape functions.

The C++ library (`kernels/recurrences.cpp`) defines the operators `torch.ops.lstmgan.*` and their
CPU kernels. This module adds, the way torch's C++-extension guide does it:

* `register_fake`: each operator's outputs from its inputs' shapes alone, so torch.compile and
  AOT autograd can trace through the kernel without running it;
* `register_autograd`: the training forwards (`lstm_forward`, `rnn_forward`,
  `lstm_forward_checkpointed`) are differentiated by the backward-through-time operators
  (`lstm_backward`, `rnn_backward`, `lstm_backward_checkpointed`). Only h_T carries a gradient;
  the stored gates and states are for the backward alone.

`register()` runs once, after `backends.build_kernel` has loaded the library.
"""

from __future__ import annotations

import torch

_registered = False


# ---------------------------------------------------------------- shapes (fake tensors)

def _lstm_forward_fake(x, W_x, W_h, b):
    B, T, H = x.shape[0], x.shape[1], W_h.shape[1]
    # h_T [B, H], activated gates [T, B, 4H], cells c_0..c_T and hiddens h_0..h_T [T + 1, B, H]
    return x.new_empty(B, H), x.new_empty(T, B, 4 * H), x.new_empty(T + 1, B, H), x.new_empty(T + 1, B, H)


def _rnn_forward_fake(x, W_x, W_h, b):
    B, T, H = x.shape[0], x.shape[1], W_h.shape[1]
    return x.new_empty(B, H), x.new_empty(T, B, H)                    # h_T, h_1..h_T


def _inference_fake(x, W_x, W_h, b):
    return x.new_empty(x.shape[0], W_h.shape[1])                      # h_T


def _grads_fake(x, W_x, W_h, needs_grad_x):
    grad_x = x.new_empty(x.shape) if needs_grad_x else x.new_empty(0)
    return grad_x, W_x.new_empty(W_x.shape), W_h.new_empty(W_h.shape), W_x.new_empty(W_x.shape[0])


def _lstm_forward_checkpointed_fake(x, W_x, W_h, b, segment):
    B, T, H = x.shape[0], x.shape[1], W_h.shape[1]
    S = -(-T // segment)                                              # ⌈T / k⌉ saved states
    return x.new_empty(B, H), x.new_empty(S, B, H), x.new_empty(S, B, H)


def _lstm_backward_checkpointed_fake(grad_h, x, W_x, W_h, b, saved_c, saved_h, segment, needs_grad_x):
    return _grads_fake(x, W_x, W_h, needs_grad_x)


def _lstm_backward_fake(grad_h, x, W_x, W_h, gates, cells, hiddens, needs_grad_x):
    return _grads_fake(x, W_x, W_h, needs_grad_x)


def _rnn_backward_fake(grad_h, x, W_x, W_h, hiddens, needs_grad_x):
    return _grads_fake(x, W_x, W_h, needs_grad_x)


# ---------------------------------------------------------------- autograd

def _lstm_setup_context(ctx, inputs, output):
    x, W_x, W_h, _ = inputs
    _, gates, cells, hiddens = output
    ctx.save_for_backward(x, W_x, W_h, gates, cells, hiddens)
    ctx.set_materialize_grads(False)     # the stored gates and states get no gradient: no [T, B, 4H] of zeros


def _lstm_backward(ctx, grad_h, *unused_grads):
    x, W_x, W_h, gates, cells, hiddens = ctx.saved_tensors
    if grad_h is None:
        return None, None, None, None
    grad_x, grad_W_x, grad_W_h, grad_b = torch.ops.lstmgan.lstm_backward(
        grad_h, x, W_x, W_h, gates, cells, hiddens, ctx.needs_input_grad[0])
    return (grad_x if ctx.needs_input_grad[0] else None), grad_W_x, grad_W_h, grad_b


def _lstm_checkpointed_setup_context(ctx, inputs, output):
    x, W_x, W_h, b, segment = inputs
    ctx.save_for_backward(x, W_x, W_h, b, output[1], output[2])
    ctx.segment = segment
    ctx.set_materialize_grads(False)


def _lstm_checkpointed_backward(ctx, grad_h, *unused_grads):
    x, W_x, W_h, b, saved_c, saved_h = ctx.saved_tensors
    if grad_h is None:
        return None, None, None, None, None
    grad_x, grad_W_x, grad_W_h, grad_b = torch.ops.lstmgan.lstm_backward_checkpointed(
        grad_h, x, W_x, W_h, b, saved_c, saved_h, ctx.segment, ctx.needs_input_grad[0])
    return (grad_x if ctx.needs_input_grad[0] else None), grad_W_x, grad_W_h, grad_b, None


def _rnn_setup_context(ctx, inputs, output):
    x, W_x, W_h, _ = inputs
    ctx.save_for_backward(x, W_x, W_h, output[1])
    ctx.set_materialize_grads(False)


def _rnn_backward(ctx, grad_h, *unused_grads):
    x, W_x, W_h, hiddens = ctx.saved_tensors
    if grad_h is None:
        return None, None, None, None
    grad_x, grad_W_x, grad_W_h, grad_b = torch.ops.lstmgan.rnn_backward(
        grad_h, x, W_x, W_h, hiddens, ctx.needs_input_grad[0])
    return (grad_x if ctx.needs_input_grad[0] else None), grad_W_x, grad_W_h, grad_b


def register() -> None:
    """Attach the shape functions and autograd formulas to the loaded operators (idempotent)."""
    global _registered
    if _registered:
        return
    fakes = {"lstm_forward": _lstm_forward_fake, "lstm_backward": _lstm_backward_fake,
             "lstm_inference": _inference_fake, "rnn_forward": _rnn_forward_fake,
             "rnn_backward": _rnn_backward_fake, "rnn_inference": _inference_fake,
             "lstm_forward_checkpointed": _lstm_forward_checkpointed_fake,
             "lstm_backward_checkpointed": _lstm_backward_checkpointed_fake}
    for name, fake in fakes.items():
        torch.library.register_fake(f"lstmgan::{name}", fake)
    torch.library.register_autograd("lstmgan::lstm_forward", _lstm_backward, setup_context=_lstm_setup_context)
    torch.library.register_autograd("lstmgan::rnn_forward", _rnn_backward, setup_context=_rnn_setup_context)
    torch.library.register_autograd("lstmgan::lstm_forward_checkpointed", _lstm_checkpointed_backward,
                                    setup_context=_lstm_checkpointed_setup_context)
    _registered = True
