"""Differentiable augmentation of D's inputs (DiffAugment, Zhao et al. 2020), for the GAN's D and G steps.

DiffAugment transforms every image D sees, real and generated, in D's step and in G's step, with
transforms that gradients flow through, so D cannot memorise the few real images while G is still
trained to match the un-augmented distribution. "The same transform for real and fake" is the same
*policy* (here translation then cutout); the parameters are drawn independently per image and per
call, as in the reference code (github.com/mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py).

Followed from the reference: translation by an integer offset per image in y and x, with the vacated
pixels filled (the reference pads and clamps); then cutout: a square of side int(ratio · 28 + 0.5) = 14
pixels for ratio 0.5, its centre uniform over 0..28 (0..27 for an odd side), so the square may be
clipped by the border.

Departures, both deliberate: the translation range is ±`translate` pixels (3: the issue's choice;
the reference's ratio 1/8 would give int(3.5 + 0.5) = 4 at 28 pixels), and vacated and cut-out
pixels are filled with `fill` = -1 instead of the reference's 0. The images are in [-1, 1] and an
MNIST background is -1 (black), so a shifted or cut digit stays an image of the data's kind (a
digit on black with strokes missing); 0 would paint a mid-grey frame or square that no MNIST image has.
"""

from __future__ import annotations

import torch

BACKGROUND = -1.0        # an MNIST pixel at 0 of 255, scaled to [-1, 1]
TRANSLATE = 3            # the largest shift, in pixels
CUTOUT = 0.5             # the cut-out square's side as a share of the image's (DiffAugment's ratio)


def diff_augment(images: torch.Tensor, generator: torch.Generator, translate: int = TRANSLATE,
                 cutout: float = CUTOUT, fill: float = BACKGROUND) -> torch.Tensor:
    """Translate, then cut out, each image of [N, C, H, W] independently; differentiable w.r.t. `images`.

    `images` in [-1, 1] (`fill` is the background). Deterministic given `generator`'s state: it draws on
    the generator's device N shifts dy, then N shifts dx, each uniform in [-translate, translate], when
    `translate` > 0; then N centre rows and N centre columns when `cutout` > 0 (a stage that is off draws
    nothing). The draws are moved to the images' device, so a CPU generator serves CUDA images alike.
    """
    if translate:
        shifts = random_integers(generator, len(images), -translate, (translate + 1, translate + 1))
        images = translate_images(images, shifts.to(images.device), translate, fill)
    if cutout:
        side = tuple(int(size * cutout + 0.5) for size in images.shape[-2:])       # the reference's rounding
        # the centre ranges over 0..size (0..size-1 for an odd side): the square leaves each border as often
        ends = tuple(size + 1 - s % 2 for size, s in zip(images.shape[-2:], side))
        images = cut_out(images, random_integers(generator, len(images), 0, ends).to(images.device), side, fill)
    return images


def random_integers(generator: torch.Generator, n: int, low: int, ends: tuple[int, int]) -> torch.Tensor:
    """[N, 2] integers (y, x) on the generator's device: y uniform in [low, ends[0]), x in [low, ends[1])."""
    return torch.stack([torch.randint(low, end, (n,), generator=generator, device=generator.device)
                        for end in ends], dim=1)


def translate_images(images: torch.Tensor, offsets: torch.Tensor, pad: int, fill: float = BACKGROUND) -> torch.Tensor:
    """out[n, :, y, x] = images[n, :, y − dy_n, x − dx_n] (the content moves by +dy, +dx), `fill` where that is outside.

    `offsets` [N, 2] (dy, dx) on the images' device, each within ±`pad`. Two gathers on the image padded
    by `pad`: no loop over images, and each pixel's gradient goes back to the one pixel it came from
    (one contribution per input pixel, so the backward's sums are exact in any order, on CUDA too).
    """
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), value=fill)
    rows = torch.arange(h, device=images.device) - offsets[:, :1] + pad               # [N, H]: source rows
    cols = torch.arange(w, device=images.device) - offsets[:, 1:] + pad               # [N, W]: source columns
    picked = padded.gather(2, rows[:, None, :, None].expand(n, c, h, padded.shape[-1]))          # [N, C, H, W + 2p]
    return picked.gather(3, cols[:, None, None, :].expand(n, c, h, w))                           # [N, C, H, W]


def cut_out(images: torch.Tensor, centres: torch.Tensor, side: tuple[int, int],
            fill: float = BACKGROUND) -> torch.Tensor:
    """`fill` in the square of `side` (height, width) whose rows are cy − side//2 .. cy − side//2 + side − 1
    (and columns likewise) of each image, clipped by the border; the gradient there is zero, elsewhere the identity."""
    h, w = images.shape[-2:]
    top, left = centres[:, :1] - side[0] // 2, centres[:, 1:] - side[1] // 2                        # [N, 1] each
    y, x = torch.arange(h, device=images.device), torch.arange(w, device=images.device)
    in_rows = (y >= top) & (y < top + side[0])                                                      # [N, H]
    in_cols = (x >= left) & (x < left + side[1])                                                    # [N, W]
    square = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]                                   # [N, 1, H, W]
    return torch.where(square, fill, images)
