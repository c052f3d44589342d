"""The configuration of one GAN run; the defaults are the seed's (200 epochs, batch 64, lr 2e-4, latent 100)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import (
    BOOLEAN,
    COUNT,
    FRACTION,
    INTEGER,
    NON_NEGATIVE,
    OPTIONAL_TEXT,
    POSITIVE,
    POSITIVE_INT,
    EntryConfig,
    Rule,
    one_of,
    option,
)
from ..devices import DEVICE_HELP
from .architectures import DEFAULT_ARCH, REGISTRY
from .mnist import DATASETS, NUM_CLASSES, TRAIN_SIZE, VAL_SPLITS

MAX_CLUSTERS = 1000
FAKE_LABELS = ("train-shares", "uniform")
LOSSES = ("bce", "hinge")
# What a run saved before these options existed did: a config without the key resolves to this
# value (not to the new default), so old runs load, evaluate and resume on their own split.
BEFORE_OPTION = {"val_split": "tail", "fake_labels": "uniform"}


@dataclass(init=False, eq=False)
class GANConfig(EntryConfig):
    """One GAN (or conditional GAN) run on MNIST-like data; the architecture-specific options join from the
    architectures' registry entries (`option_fields`)."""

    kind = "gan"
    entries = REGISTRY
    entry_key = "arch"
    derived_keys = ("resolved_device", "train_size")

    n_epochs: int = option(200, "epochs", POSITIVE_INT, changeable=True, short="e")
    batch_size: int = option(64, "images per step", POSITIVE_INT, short="b")
    lr: float = option(0.0002, "Adam learning rate of G, and of D unless --lr-d", POSITIVE, short="lr")
    lr_d: float = option(0.0, "D's own Adam learning rate, a two-time-scale update (TTUR, Heusel et al. 2017); "
                              "--lr-decay-from scales it like --lr (0: --lr)", NON_NEGATIVE, metavar="LR")
    b1: float = option(0.5, "Adam beta1 of both networks, as in DCGAN and PyTorch-GAN (SNGAN: 0)", FRACTION)
    b2: float = option(0.999, "Adam beta2 of both networks (SNGAN: 0.9)", FRACTION)
    latent_dim: int = option(100, "size of z", POSITIVE_INT, short="z")
    save_interval: int = option(500, "iterations between sample grids and checkpoints", POSITIVE_INT)
    arch: str = option(DEFAULT_ARCH, "the networks", Rule(lambda v: isinstance(v, str), "a name"), short="")
    conditional: bool = option(False, "condition both networks on the digit label (cGAN)", BOOLEAN, short="cgan")
    dataset: str = option("mnist", " or ".join(DATASETS), one_of(*DATASETS))
    data_dir: str | None = option(None, "folder with the IDX files (else $LSTMGAN_DATA_DIR, the cache, "
                                        "../shared/data/mnist)",
                                  OPTIONAL_TEXT, changeable=True, metavar="DIR")
    seed: int = option(0, "seed of the init, the noise and the batch order", INTEGER, short="s")
    device: str = option("auto", DEVICE_HELP, changeable=True)
    log_interval: int = option(100, "iterations per metrics.csv loss row (means over the window)", POSITIVE_INT)
    eval_interval: int = option(0, "epochs between quality evaluations on the validation split (0: none)", COUNT)
    eval_samples: int = option(10000, "samples per evaluation (10000: FID on 5000 varies by ±0.7 between draws "
                                      "of real images)", POSITIVE_INT)
    ema_decay: float = option(0.0, "keep an exponential moving average of G's weights and sample from it (0: off)",
                              FRACTION, short="ema")
    ema_rampup: float = option(0.0, "with --ema-decay: the EMA's warm-up (StyleGAN2-ADA's ramp): its half-life in "
                                    "images is at most R times the images seen so far, so early samples are not "
                                    "an average over the random start (0: off; StyleGAN2-ADA: 0.05)", FRACTION,
                               short="ramp")
    ema_slow_decay: float = option(0.0, "with --ema-decay: a second, slower EMA of G (a decay above --ema-decay, "
                                        "the same warm-up), scored beside it at each evaluation (metrics.csv's "
                                        "fid_ema_slow); samples and snapshots stay --ema-decay's (0: none)",
                                   FRACTION, short="ema2")
    d_steps: int = option(1, "D steps per G step: each D step reads its own real batch (an iteration is one D "
                             "step), and G steps on every k-th (SNGAN: 5; the seed's: 1)", POSITIVE_INT, short="ds")
    snapshot_interval: int = option(10, "epochs between kept snapshots, and epoch 1 (0: none)", COUNT)
    max_iterations: int = option(0, "stop after this many iterations in all (0: run --n-epochs)", COUNT,
                                 changeable=True, short="it")
    lr_decay_from: int = option(0, "after this epoch both learning rates fall linearly to 0 at the end "
                                   "(0: the seed's constant rate)", COUNT, short="decay")
    d_dropout: float = option(0.0, "dropout after each hidden layer of D", FRACTION, short="dd")
    loss: str = option("bce", "the adversarial loss on D's logits: bce (the seed's: D's binary cross-entropy, "
                              "(real + fake) / 2, and G's non-saturating BCE) or hinge (SNGAN's: D's "
                              "max(0, 1 − D(x)) + max(0, 1 + D(G(z))), G's −D(G(z)))", one_of(*LOSSES),
                    metavar="{" + ",".join(LOSSES) + "}")
    r1_gamma: float = option(0.0, "R1 penalty (Mescheder et al. 2018), γ/2 · E‖∇ₓD(x)‖² of D's logit on real images, "
                                  "γ as in the papers, whose D loss is the sum of its real and fake terms (so "
                                  "the halved --loss bce gets γ/4); 0: off", NON_NEGATIVE, metavar="GAMMA")
    r1_every: int = option(16, "with --r1-gamma: R1 on every k-th D step only, weighted by k (StyleGAN2's lazy "
                               "regularisation; 1: every step)", POSITIVE_INT, metavar="K")
    spectral_norm: bool = option(False, "spectral norm (Miyato et al. 2018) on every layer of D, the projection "
                                        "embedding included; SNGAN pairs it with --loss hinge --b1 0 --b2 0.9",
                                 BOOLEAN)
    diff_augment: bool = option(False, "DiffAugment (Zhao et al. 2020): every image D sees, real and generated, "
                                       "in D's steps and G's, shifted by up to ±3 pixels with a 14×14 square cut "
                                       "out (background-filled), drawn per image from a stream of its own",
                                BOOLEAN)
    val_size: int = option(10000, "N training images held out as the validation split of in-training "
                                  "evaluations and best.pt, never trained on (0: train on all)", COUNT)
    val_split: str = option("stratified", "which images: stratified (a seeded random draw, each digit at its "
                                          "share) or tail (the file's last N: runs saved before this option)",
                            one_of(*VAL_SPLITS))
    val_seed: int = option(0, "seed of the stratified validation split (the same split for every run seed)",
                           INTEGER)
    fake_labels: str = option("train-shares", "cGAN: the digits asked of G in training: at the training part's "
                                              "shares, or uniform (runs saved before this option)",
                              one_of(*FAKE_LABELS))
    clusters: int = option(0, "unconditional G and D conditioned on K pseudo-classes: k-means clusters of the "
                              "training pixels, no labels read; G draws the cluster from z (0: off)", COUNT,
                           metavar="K", short="k")
    d_projection: bool = option(False, "cGAN: projection discriminator (Miyato & Koyama 2018) instead of "
                                       "the label concatenated to D's input", BOOLEAN, short="proj")
    g_conditional_bn: bool = option(False, "cGAN: per-class batch-norm scale and shift in G instead of the "
                                           "label concatenated to z", BOOLEAN, short="cbn")
    tensorboard: bool = option(False, "also write TensorBoard event files (pip install 'lstmgan[tensorboard]')",
                               BOOLEAN, changeable=True)

    def check(self) -> None:
        self.check_entry()
        self.need(self.val_size < TRAIN_SIZE, "val_size", f"below the {TRAIN_SIZE} training images")
        self.need(self.batch_size <= TRAIN_SIZE - self.val_size, "batch_size",
                  f"at most the {TRAIN_SIZE - self.val_size} training images")
        self.need(self.lr_decay_from < self.n_epochs, "lr_decay_from", f"below --n-epochs {self.n_epochs}")
        self.need(self.val_size > 0 or not self.eval_interval, "eval_interval",
                  "0 when --val-size is 0 (in-training evaluation reads the validation split, never the test set)")
        self.need(not (self.conditional and self.clusters), "clusters", "0 with --conditional (labels or clusters)")
        self.need(self.clusters <= MAX_CLUSTERS, "clusters", f"at most {MAX_CLUSTERS}")
        defaults = self.defaults()
        for name in ("d_projection", "g_conditional_bn"):
            self.need(self.conditional or self.clusters or not getattr(self, name), name,
                      "used with --conditional or --clusters")
        for name in ("ema_rampup", "ema_slow_decay"):
            self.need(self.ema_decay > 0 or not getattr(self, name), name, "used with --ema-decay")
        self.need(not self.ema_slow_decay or self.ema_slow_decay > self.ema_decay, "ema_slow_decay",
                  f"above --ema-decay {self.ema_decay} (a slower average)")
        self.need(self.r1_gamma > 0 or self.r1_every == defaults["r1_every"], "r1_every",
                  "left at its default without --r1-gamma (it schedules the R1 penalty)")
        if self.spectral_norm:
            self.need(discriminator_has_own_layers(self), "spectral_norm",
                      f"off with --arch {self.arch}: its D has no layers of its own to normalise")

    @property
    def num_classes(self) -> int:
        """Digit labels a user passes to G (0: unconditional)."""
        return NUM_CLASSES if self.conditional else 0

    @property
    def num_conditions(self) -> int:
        """What D and G are conditioned on in training: digit labels, clusters, or nothing (0)."""
        return self.num_classes or self.clusters


def discriminator_has_own_layers(config: GANConfig) -> bool:
    """Whether the D that `config` describes has trained layers for spectral norm to wrap (built on the side:
    torch's global generator is left as it was)."""
    from .architectures import build_discriminator
    from .regularize import has_own_layers

    with torch.random.fork_rng(devices=[]):
        return has_own_layers(build_discriminator(config))


def as_it_ran(values: dict) -> dict:
    """A saved config's values, with each option it predates set to what the run did (BEFORE_OPTION)."""
    return {**{k: v for k, v in BEFORE_OPTION.items() if k not in values}, **values}


class GANConfigBeforeSplitOptions(GANConfig):
    """The config class that resumes a run saved before --val-split and --fake-labels existed: a
    resume fills missing options with the class defaults, and these are what such a run did."""

    @classmethod
    def defaults(cls) -> dict:
        return {**super().defaults(), **BEFORE_OPTION}


def config_class_for(saved: dict | None) -> type[GANConfig]:
    """GANConfig, or for a saved config without the split options the class that resumes it as it ran."""
    if saved is not None and any(key not in saved for key in BEFORE_OPTION):
        return GANConfigBeforeSplitOptions
    return GANConfig
