"""Building blocks for regularised GAN training: R1, spectral norm and the hinge loss.

R1            Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?": penalise
              D's gradient on real images, γ/2 · E_x ‖∇_x D(x)‖², with D(x) the logit. Lazily (StyleGAN2,
              Karras et al. 2020): only every k-th D step, weighted by k, so the mean penalty per step is kept.
Spectral norm Miyato et al. 2018; every weight of D divided by an estimate of its largest singular value
              (one power iteration per forward pass in training mode). With the projection discriminator
              (Miyato & Koyama 2018) the class embedding is normalised too, as in their code.
Hinge loss    D: E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))]; G: −E[D(G(z))] (SNGAN's pairing with spectral norm).

All losses take D's logits (the pre-sigmoid output every discriminator here returns from `forward`),
never `probability`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

SPECTRAL_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)    # what spectral norm wraps in D


# ---------------------------------------------------------------- R1

def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """E_x ‖∇_x D(x)‖² over the batch: the R1 penalty before its weight γ/2.

    `real_images` must require grad before they go through D (`real.requires_grad_(True)`), and
    `real_logits` [N] or [N, 1] are D's logits for them. Each logit depends on its own image alone
    (no batch norm in D), so the gradient of their sum gives every image's gradient at once. The graph
    is kept (create_graph) so that the penalty's own gradient trains D.
    """
    if not real_images.requires_grad:
        raise ValueError("r1_penalty needs real_images that required grad when D read them")
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()                      # mean_n ‖∇_x D(x_n)‖²


def lazy_r1_weight(gamma: float, every: int) -> float:
    """The weight of `r1_penalty` on a D step that computes it, when it is computed every `every` steps:
    γ/2 · k (StyleGAN2's lazy regularisation: k times the weight, one step in k). `every` = 1: γ/2, the eager form."""
    if every < 1:
        raise ValueError(f"every must be at least 1 (got {every})")
    return gamma / 2 * every


def r1_due(d_step: int, every: int) -> bool:
    """Whether D step number `d_step` (counting from 0) adds the lazy R1 term: steps 0, k, 2k, ..."""
    return d_step % every == 0


def lazy_adam_settings(lr: float, betas: tuple[float, float], every: int) -> tuple[float, tuple[float, float]]:
    """D's Adam rate and betas under lazy R1, as StyleGAN2 sets them: with c = k / (k + 1), lr · c and β^c.

    StyleGAN2 takes its lazy step as a separate optimiser step, one in k + 1 of D's; this compensates
    the momentum for it. Optional here, where the term is added to an ordinary D step instead."""
    c = every / (every + 1)
    return lr * c, (betas[0] ** c, betas[1] ** c)


# ---------------------------------------------------------------- spectral norm

def own_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) of every Linear, Conv2d, ConvTranspose2d and Embedding of `module` whose weight is
    trained (a frozen, borrowed feature extractor's layers are not its own), spectral-normed or not."""
    return [(name, m) for name, m in module.named_modules()
            if isinstance(m, SPECTRAL_LAYERS) and weight_parameter(m).requires_grad]


def has_own_layers(module: nn.Module) -> bool:
    """Whether spectral norm has anything to wrap in `module` (refuse --spectral-norm where not)."""
    return bool(own_layers(module))


def weight_parameter(layer: nn.Module) -> nn.Parameter:
    """The trained weight tensor of a layer; for a parametrised one its `original`, read without computing
    `layer.weight` (which, under spectral norm in training mode, would run a power iteration)."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


def apply_spectral_norm(module: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """Wrap the weight of every layer `own_layers` finds with spectral norm, in place; returns `module`.

    Apply it right after building D, on the CPU and before `.to(device)` and before the optimiser
    is made: the wrap replaces `weight` by the parameter `parametrizations.weight.original` and draws
    the power-iteration vectors u, v from torch's global generator (on the CPU: the same on every
    device). u and v are buffers (`...parametrizations.weight.0._u`, `._v`), so they are in the state
    dict and a checkpoint resumes the power iteration exactly. Layers wrapped already are left as they are.
    """
    for _, layer in own_layers(module):
        if not parametrize.is_parametrized(layer, "weight"):
            spectral_norm(layer, n_power_iterations=n_power_iterations)
    return module


def largest_singular_value(layer: nn.Module) -> float:
    """σ₁ of the matrix spectral norm normalises: the weight with its output dimension first, flattened
    (dim 1 of a ConvTranspose2d's [in, out, kh, kw] weight, dim 0 of the others). Read in eval mode, so
    measuring runs no power iteration (it would change u, and with it the run)."""
    training = layer.training
    try:
        with torch.no_grad():
            weight = layer.eval().weight
    finally:
        layer.train(training)
    if isinstance(layer, nn.ConvTranspose2d):
        weight = weight.transpose(0, 1)
    return float(torch.linalg.matrix_norm(weight.reshape(len(weight), -1), ord=2))


# ---------------------------------------------------------------- hinge loss

def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's hinge loss on logits: E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))] (a sum, as in SNGAN)."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's hinge loss on D's logits for generated images: −E[D(G(z))]."""
    return -fake_logits.mean()
