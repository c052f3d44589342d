"""DiffAugment, R1, spectral norm, the hinge loss and the centroid check (gan/augment.py, gan/regularize.py)."""

import io

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from lstmgan.gan import conv, mlp
from lstmgan.gan.augment import cut_out, diff_augment, translate_images
from lstmgan.gan.clusters import centroid_mismatch
from lstmgan.gan.regularize import (
    apply_spectral_norm,
    has_own_layers,
    hinge_d_loss,
    hinge_g_loss,
    largest_singular_value,
    lazy_r1_weight,
    own_layers,
    r1_due,
    r1_penalty,
)

N, H, W = 64, 28, 28


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def one_hot_images(n: int, y: int, x: int) -> torch.Tensor:
    images = torch.full((n, 1, H, W), -1.0)       # background -1, one white pixel
    images[:, :, y, x] = 1.0
    return images


def drawn_shifts(seed: int, n: int, translate: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """The (dy, dx) diff_augment draws first: n rows, then n columns, uniform in [-translate, translate]."""
    g = seeded(seed)
    return (torch.randint(-translate, translate + 1, (n,), generator=g),
            torch.randint(-translate, translate + 1, (n,), generator=g))


# ---------------------------------------------------------------- DiffAugment

def test_translation_moves_a_one_hot_pixel_by_the_drawn_offsets():
    out = diff_augment(one_hot_images(N, 10, 12), seeded(7), translate=3, cutout=0)
    dy, dx = drawn_shifts(7, N)
    assert len(set(dy.tolist())) == 7 and len(set(dx.tolist())) == 7      # every shift in ±3 drawn, per image
    for n in range(N):
        lit = (out[n, 0] == 1).nonzero().tolist()
        assert lit == [[10 + int(dy[n]), 12 + int(dx[n])]]
    assert ((out == 1) | (out == -1)).all()                                 # the rest is background


def test_translation_fills_with_the_background_and_drops_what_leaves_the_frame():
    image = torch.linspace(-0.9, 0.9, H * W).view(1, 1, H, W)
    out = translate_images(image, torch.tensor([[2, -3]]), pad=3)
    assert torch.equal(out[0, 0, 2:, :W - 3], image[0, 0, :H - 2, 3:])      # out[y, x] = in[y − 2, x + 3]
    assert (out[0, 0, :2] == -1).all() and (out[0, 0, :, W - 3:] == -1).all()
    gone = translate_images(one_hot_images(1, 0, 0), torch.tensor([[-1, 0]]), pad=3)
    assert (gone == -1).all()


def test_cutout_fills_the_reference_square_with_background():
    images = torch.rand(N, 1, H, W, generator=seeded(1)) * 1.8 - 0.9      # never -1 itself
    out = diff_augment(images, seeded(3), translate=0, cutout=0.5)
    g = seeded(3)
    cy, cx = (torch.randint(0, 29, (N,), generator=g) for _ in range(2))   # 14 is even: centres 0..28
    for n in range(N):
        rows = slice(max(0, int(cy[n]) - 7), min(H, int(cy[n]) + 7))
        cols = slice(max(0, int(cx[n]) - 7), min(W, int(cx[n]) + 7))
        expected = images[n, 0].clone()
        expected[rows, cols] = -1
        assert torch.equal(out[n, 0], expected)
    cut = (out == -1).flatten(1).sum(1)
    assert cut.max() == 14 * 14 and cut.min() >= 7 * 7                    # clipped by the border at worst to 7 x 7


def test_gradients_are_identity_outside_the_cut_and_zero_inside():
    images = (torch.rand(N, 1, H, W, generator=seeded(1)) * 1.8 - 0.9).requires_grad_(True)
    upstream = torch.randn(N, 1, H, W, generator=seeded(2))
    out = diff_augment(images, seeded(5), translate=0, cutout=0.5)
    out.backward(upstream)
    cut = out.detach() == -1
    assert torch.equal(images.grad, torch.where(cut, 0.0, upstream))


def test_translation_gradient_is_the_reverse_shift():
    images = torch.randn(N, 1, H, W, generator=seeded(1), requires_grad=True)
    upstream = torch.randn(N, 1, H, W, generator=seeded(2))
    diff_augment(images, seeded(9), translate=3, cutout=0).backward(upstream)
    dy, dx = drawn_shifts(9, N)
    back = translate_images(upstream, -torch.stack([dy, dx], 1), pad=3, fill=0.0)     # the adjoint of a shift
    assert torch.equal(images.grad, back)


def test_augment_is_deterministic_per_generator_and_keeps_shape_dtype_and_channels():
    images = torch.randn(N, 3, H, W, generator=seeded(1), dtype=torch.float64)
    a, b = diff_augment(images, seeded(11)), diff_augment(images, seeded(11))
    assert torch.equal(a, b) and a.shape == images.shape and a.dtype == torch.float64
    assert not torch.equal(a, diff_augment(images, seeded(12)))
    moved = (a != -1)
    assert torch.equal(moved[:, 0], moved[:, 1])                           # every channel gets the same transform
    g = seeded(11)
    diff_augment(images, g)
    assert not torch.equal(g.get_state(), seeded(11).get_state())          # the stream moved on: next call differs


def test_cut_out_with_a_known_centre():
    out = cut_out(torch.zeros(1, 1, 6, 6), torch.tensor([[0, 5]]), (2, 2))
    assert (out == -1).nonzero()[:, 2:].tolist() == [[0, 4], [0, 5]]       # rows −1..0, columns 4..5, clipped


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_on_cuda_matches_the_cpu():
    images = torch.randn(N, 1, H, W, generator=seeded(1))
    on_cpu = diff_augment(images, seeded(4))
    assert torch.equal(diff_augment(images.cuda(), seeded(4)).cpu(), on_cpu)


# ---------------------------------------------------------------- R1

def test_r1_of_a_linear_discriminator_is_its_weight_norm_squared():
    w = torch.randn(H * W, generator=seeded(1), requires_grad=True)
    real = torch.randn(8, 1, H, W, generator=seeded(2), requires_grad=True)
    logits = real.flatten(1) @ w + 0.3                                     # D(x) = w·x + b: ∇_x D = w
    penalty = r1_penalty(logits, real)
    assert torch.allclose(penalty, w.detach().pow(2).sum())
    penalty.backward()                                                     # create_graph: the penalty trains D
    assert torch.allclose(w.grad, 2 * w.detach())                          # ∂‖w‖²/∂w = 2w


def test_r1_averages_per_image_gradient_norms():
    real = torch.randn(4, 1, H, W, generator=seeded(3), requires_grad=True)
    logits = real.pow(2).flatten(1).sum(1, keepdim=True)                   # D(x) = ‖x‖²: ∇ = 2x
    expected = (2 * real.detach()).pow(2).flatten(1).sum(1).mean()
    assert torch.allclose(r1_penalty(logits, real), expected)
    with pytest.raises(ValueError, match="require"):
        r1_penalty(logits.detach(), real.detach())


def test_lazy_r1_weight_and_schedule():
    assert lazy_r1_weight(0.1, 16) == pytest.approx(0.8) and lazy_r1_weight(1.0, 1) == 0.5
    assert [s for s in range(10) if r1_due(s, 4)] == [0, 4, 8]
    with pytest.raises(ValueError):
        lazy_r1_weight(1.0, 0)


def test_r1_through_a_spectral_normed_conv_discriminator_trains_it():
    torch.manual_seed(0)
    D = apply_spectral_norm(conv.Discriminator(10, projection=True))
    real = torch.randn(4, 1, H, W, generator=seeded(1)).requires_grad_(True)
    labels = torch.arange(4)
    r1_penalty(D(real, labels), real).backward()
    # every weight (the projection embedding's too) gets a gradient; biases get none: D is piecewise linear in x
    weights = {name: p.grad for name, p in D.named_parameters() if name.endswith("original")}
    assert len(weights) == 4 and all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0
                                     for g in weights.values())


# ---------------------------------------------------------------- spectral norm

def discriminators():
    torch.manual_seed(0)
    return [mlp.Discriminator(10, projection=True), conv.Discriminator(10, projection=True),
            conv.Discriminator(10), nn.Sequential(nn.ConvTranspose2d(1, 4, 4, stride=2), nn.Flatten())]


@pytest.mark.parametrize("index", range(4))
def test_spectral_norm_wraps_every_layer_and_brings_sigma_to_one(index):
    D = discriminators()[index]
    layers = [m for m in D.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding))]
    assert apply_spectral_norm(D) is D and len(own_layers(D)) == len(layers)
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)           # the embeddings too
    x, labels = torch.randn(16, 1, H, W, generator=seeded(1)), torch.arange(16) % 10
    for _ in range(10):                                                            # one power iteration per forward
        D(x, labels) if index < 3 else D(x)
    for name, layer in own_layers(D):
        assert largest_singular_value(layer) == pytest.approx(1.0, abs=0.02), name
    apply_spectral_norm(D)                                                         # wrapping twice changes nothing
    assert all(len(m.parametrizations.weight) == 1 for m in layers)


def test_measuring_sigma_runs_no_power_iteration():
    D = apply_spectral_norm(discriminators()[0])
    before = {k: v.clone() for k, v in D.state_dict().items()}
    [largest_singular_value(layer) for _, layer in own_layers(D)]
    assert all(torch.equal(before[k], v) for k, v in D.state_dict().items()) and D.training


def test_spectral_normed_discriminator_round_trips_through_its_state_dict():
    D = apply_spectral_norm(discriminators()[1])
    x, labels = torch.randn(8, 1, H, W, generator=seeded(1)), torch.arange(8)
    D(x, labels)
    state = D.state_dict()
    assert sum(k.endswith("._u") for k in state) == len(own_layers(D)) == 4
    buffer = io.BytesIO()
    torch.save(state, buffer)
    torch.manual_seed(123)                                                         # another init, other u and v
    copy = apply_spectral_norm(conv.Discriminator(10, projection=True))
    copy.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    for _ in range(3):                                                             # training mode: u moves alike
        assert torch.equal(D(x, labels), copy(x, labels))
    assert all(torch.equal(v, copy.state_dict()[k]) for k, v in D.state_dict().items())
    with pytest.raises(RuntimeError):                                              # a plain D refuses the weights
        conv.Discriminator(10, projection=True).load_state_dict(state)


def test_has_own_layers():
    assert has_own_layers(mlp.Discriminator())
    assert not has_own_layers(nn.Sequential(nn.Flatten(), nn.LeakyReLU()))
    frozen = nn.Sequential(nn.Linear(4, 4)).requires_grad_(False)                  # a borrowed, frozen extractor
    assert not has_own_layers(frozen) and apply_spectral_norm(frozen) is frozen
    assert not parametrize.is_parametrized(frozen[0], "weight")


# ---------------------------------------------------------------- hinge loss

def test_hinge_losses_at_known_values():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.0])
    # real: max(0, 1 − x) = 0, 0.5, 2; fake: max(0, 1 + x) = 0, 1, 2
    assert hinge_d_loss(real, fake).item() == pytest.approx(2.5 / 3 + 1.0)
    assert hinge_g_loss(fake).item() == pytest.approx(1 / 3)
    assert hinge_d_loss(torch.full((4, 1), 1.0), torch.full((4, 1), -1.0)).item() == 0.0   # the margin met: no loss


# ---------------------------------------------------------------- centroid mismatch

def test_centroid_mismatch_is_zero_on_the_centroids_and_one_when_every_label_is_shifted():
    k = 5
    centroids = torch.rand(k, H * W, generator=seeded(1))                  # pixels in [0, 1], as k-means keeps them
    images = (centroids * 2 - 1).view(k, 1, H, W).repeat(3, 1, 1, 1)       # G's scale, [-1, 1]
    asked = torch.arange(k).repeat(3)
    right = centroid_mismatch(images, asked, centroids)
    assert right.share == 0 and right.requested.tolist() == [3] * k and right.mismatched.sum() == 0
    assert torch.equal(right.confusion, 3 * torch.eye(k, dtype=torch.long))
    wrong = centroid_mismatch(images, (asked + 1) % k, centroids)
    assert wrong.share == 1 and torch.equal(wrong.mismatched, wrong.requested)


def test_centroid_mismatch_counts_per_cluster():
    centroids = torch.stack([torch.zeros(H * W), torch.ones(H * W)])       # black, white
    images = torch.stack([torch.full((H * W,), v) for v in (-1.0, -0.9, 1.0, 0.9)])   # near black twice, white twice
    result = centroid_mismatch(images, torch.tensor([0, 1, 1, 1]), centroids)
    assert result.share == 0.25 and result.mismatched.tolist() == [0, 1] and result.requested.tolist() == [1, 3]
    assert result.confusion.tolist() == [[1, 0], [1, 2]]
