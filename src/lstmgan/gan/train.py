"""Training the (conditional) GAN on MNIST-like data.

The loop follows the seed: for each batch, one discriminator step on real and generated
images, then one generator step against the updated discriminator. The data set lives
on the training device as one uint8 tensor and batches are drawn by index, so there is
no per-sample Python work (the course code's DataLoader spent more time feeding the
model than training it on a CPU).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F

from ..devices import resolve_device
from ..errors import TrainingInterrupted, UsageError
from ..plots import line_plot, save_grid, to_uint8
from ..runs import Run, resolve_config
from ..seeding import epoch_order, generator, seed_everything
from ..signals import StopRequest
from ..training import StepLog, assert_finite_parameters, progress_bar
from . import mnist
from .models import Discriminator, Generator

KIND = "gan"
BUDGET_KEYS = {"n_epochs", "max_iterations", "device", "data_dir"}
LOSS_COLUMNS = ["d_loss", "g_loss", "d_real", "d_fake"]
EVAL_COLUMNS = ["fid", "inception_score", "precision", "recall", "class_kl_to_uniform", "conditional_accuracy",
                "min_class_recall"]


@dataclass
class GANConfig:
    """One GAN run; the defaults are the seed's (200 epochs, batch 64, lr 2e-4, latent 100)."""

    n_epochs: int = 200
    batch_size: int = 64
    lr: float = 0.0002
    b1: float = 0.5                # Adam betas (0.5, 0.999) as in DCGAN and PyTorch-GAN
    b2: float = 0.999
    latent_dim: int = 100
    save_interval: int = 500       # iterations between sample grids and checkpoints
    conditional: bool = False
    dataset: str = "mnist"
    data_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    log_interval: int = 100        # iterations per metrics.csv loss row (means over the window)
    eval_interval: int = 0         # epochs between quality evaluations (0: none)
    eval_samples: int = 5000
    ema_decay: float = 0.0         # > 0: also keep an exponential moving average of G's weights
    snapshot_interval: int = 10    # epochs between kept snapshots (and epoch 1); 0: none
    max_iterations: int = 0        # stop after this many iterations in all (0: run n_epochs)
    lr_decay_from: int = 0         # > 0: after this epoch, both learning rates fall linearly to 0 at the end
    d_dropout: float = 0.0         # > 0: dropout after each hidden layer of D
    val_size: int = 10000          # the last N training images: the validation split for evaluations (0: none)
    d_lr: float = 0.0              # > 0: D's own learning rate (two time scales); 0: the same as --lr
    d_projection: bool = False     # cGAN: projection discriminator instead of the label concatenated to D's input
    g_conditional_bn: bool = False  # cGAN: per-class batch-norm scale and shift in G instead of the label input

    def validate(self) -> "GANConfig":
        def need(ok: bool, flag: str, rule: str, value):
            if not ok:
                raise UsageError(f"--{flag} must be {rule} (got {value!r})")

        for name in ("n_epochs", "batch_size", "latent_dim", "save_interval", "log_interval", "eval_samples"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1, name.replace("_", "-"), "a positive integer", value)
        for name in ("eval_interval", "snapshot_interval", "max_iterations", "lr_decay_from"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 0, name.replace("_", "-"), "0 or a positive integer", value)
        need(math.isfinite(self.lr) and self.lr > 0, "lr", "positive", self.lr)
        need(0 <= self.b1 < 1 and 0 <= self.b2 < 1, "b1/--b2", "in [0, 1)", (self.b1, self.b2))
        need(0 <= self.ema_decay < 1, "ema-decay", "in [0, 1)", self.ema_decay)
        need(0 <= self.d_dropout < 1, "d-dropout", "in [0, 1)", self.d_dropout)
        need(self.dataset in mnist.DATASETS, "dataset", " or ".join(mnist.DATASETS), self.dataset)
        need(self.batch_size <= 60000, "batch-size", "at most the 60000 training images", self.batch_size)
        need(self.lr_decay_from < self.n_epochs, "lr-decay-from", f"below --n-epochs {self.n_epochs}",
             self.lr_decay_from)
        need(isinstance(self.val_size, int) and self.val_size >= 0, "val-size", "0 or a positive integer",
             self.val_size)
        need(self.val_size > 0 or not self.eval_interval, "eval-interval", "0 when --val-size is 0 (in-training "
             "evaluation reads the validation split, never the test set)", self.eval_interval)
        need(math.isfinite(self.d_lr) and self.d_lr >= 0, "d-lr", "0 (same as --lr) or positive", self.d_lr)
        for name in ("d_projection", "g_conditional_bn"):
            need(self.conditional or not getattr(self, name), name.replace("_", "-"), "used with --conditional",
                 getattr(self, name))
        return self

    @classmethod
    def from_dict(cls, values: dict) -> "GANConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @property
    def num_classes(self) -> int:
        return 10 if self.conditional else 0


def adversarial_step(G, D, opt_G, opt_D, real, z, real_labels=None, fake_labels=None) -> torch.Tensor:
    """One discriminator step, then one generator step; returns [d_loss, g_loss, D(x), D(G(z))].

    Real and generated images go through D in one batch (D has no batch norm, so this is
    the same as two calls). During the generator step D's weights need no gradients.
    """
    n = len(real)
    fake = G(z, fake_labels)
    labels = None if real_labels is None else torch.cat([real_labels, fake_labels])
    logits = D(torch.cat([real.view(n, -1), fake.detach().view(n, -1)]), labels)
    targets = torch.cat([torch.ones(n, 1, device=real.device), torch.zeros(n, 1, device=real.device)])
    d_loss = F.binary_cross_entropy_with_logits(logits, targets)          # = (real loss + fake loss) / 2
    opt_D.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_D.step()

    D.requires_grad_(False)
    g_loss = F.binary_cross_entropy_with_logits(D(fake, fake_labels), torch.ones(n, 1, device=real.device))
    opt_G.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_G.step()
    D.requires_grad_(True)
    probs = torch.sigmoid(logits.detach())
    return torch.stack([d_loss.detach(), g_loss.detach(), probs[:n].mean(), probs[n:].mean()])


def adam(params, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.Adam:
    """Adam with the fused single-kernel update where this torch build has it for `device`."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError, ValueError):   # older torch, or no fused kernel for this device
        return torch.optim.Adam(params, lr=lr, betas=betas)


def real_batch(images, labels, index, conditional: bool):
    """Images of one batch as float vectors in [-1, 1] (uint8 [0, 255] on the device), and labels."""
    return images[index].float().div_(127.5).sub_(1), (labels[index] if conditional else None)


def noise_batch(noise: torch.Generator, n: int, config: GANConfig, device):
    """z ~ N(0, I), and uniform digit labels for a conditional G, from the run's own noise stream."""
    z = torch.randn(n, config.latent_dim, generator=noise).to(device)
    fake_labels = torch.randint(10, (n,), generator=noise).to(device) if config.conditional else None
    return z, fake_labels


def set_learning_rate(lr: float, *optimizers) -> None:
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr


def lr_factor(config: GANConfig, iteration: int, total: int, batches_per_epoch: int) -> float:
    """1 (the seed's constant rates), or with --lr-decay-from E a linear fall to 0 after epoch E."""
    start = config.lr_decay_from * batches_per_epoch
    if not config.lr_decay_from or iteration < start:
        return 1.0
    return max(0.0, 1 - (iteration - start) / max(1, total - start))


class EMA:
    """Exponential moving average of a generator's weights (batch-norm statistics copied as is)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        live = list(model.parameters())
        torch._foreach_lerp_(list(self.model.parameters()), live, 1 - self.decay)
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            mine.copy_(theirs)


@dataclass
class Position:
    epoch: int = 1
    step: int = 0
    iteration: int = 0


def fixed_noise(config: GANConfig, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The noise (and labels) behind every progress grid of a run: 25, or 10 per digit."""
    n = n or (100 if config.conditional else 25)
    z = torch.randn(n, config.latent_dim, generator=generator(config.seed, 0xF1ED))
    labels = torch.arange(n) * 10 // n if config.conditional else None
    return z, labels


@torch.no_grad()
def generate(G: Generator, z: torch.Tensor, labels=None, batch_size: int = 1000) -> torch.Tensor:
    """Images from G in eval mode (batch-norm running statistics), batched; G's mode is restored."""
    was_training = G.training
    G.eval()
    device = next(G.parameters()).device
    out = [G(z[s:s + batch_size].to(device), None if labels is None else labels[s:s + batch_size].to(device))
           for s in range(0, len(z), batch_size)]
    G.train(was_training)
    return torch.cat(out)


def train(config: GANConfig | dict, out, resume: bool = False, progress: bool = True) -> dict:
    """Train a GAN into run directory `out`; returns a summary (iterations, last losses, last scores)."""
    run = Run(out)
    run.check_can_start(resume)
    config = resolve_config(GANConfig, config, out, resume, KIND, BUDGET_KEYS)
    device = resolve_device(config.device)
    data, validation = mnist.split_off_validation(mnist.load(config.dataset, "train", config.data_dir),
                                                  config.val_size)
    meter = None
    if config.eval_interval:
        from .metrics import QualityMeter

        meter = QualityMeter(config.dataset, config.data_dir, device, reference=validation)
    state = run.resume_state(KIND) if resume else None
    images, labels = data.images.to(device), data.labels.to(device)

    seed_everything(config.seed)
    G = Generator(config.latent_dim, config.num_classes, config.g_conditional_bn).to(device)
    D = Discriminator(config.num_classes, config.d_dropout, config.d_projection).to(device)
    opt_G = adam(G.parameters(), config.lr, (config.b1, config.b2), device)
    opt_D = adam(D.parameters(), config.d_lr or config.lr, (config.b1, config.b2), device)
    ema = EMA(G, config.ema_decay) if config.ema_decay else None
    noise = generator(config.seed, 0x2015E)
    grid_z, grid_labels = fixed_noise(config)
    step_log = StepLog(LOSS_COLUMNS, config.log_interval, device)
    pos = Position()
    if state:
        restore(state, G, D, opt_G, opt_D, ema, noise, step_log)
        pos = Position(**state["progress"])
    run.start(asdict(config) | {"resolved_device": str(device), "train_size": len(data)})
    if meter and not (run.path / "val_reference.json").is_file():
        write_val_reference(run, meter, data, config)

    sampler = lambda: ema.model if ema else G   # noqa: E731 — the generator whose samples we show
    batches_per_epoch = math.ceil(len(images) / config.batch_size)
    total = config.n_epochs * batches_per_epoch
    if config.max_iterations:
        total = min(total, config.max_iterations)

    def save(*snapshots: str) -> None:
        step_log.check()
        assert_finite_parameters(G, D, where=f"by iteration {pos.iteration}")
        run.save_checkpoint(KIND, asdict(config), snapshots, model=sampler().state_dict(),
                            generator=G.state_dict(), discriminator=D.state_dict(),
                            optimizer_G=opt_G.state_dict(), optimizer_D=opt_D.state_dict(),
                            ema=ema.model.state_dict() if ema else {}, progress=asdict(pos),
                            step_log=step_log.state(), rng={"noise": noise.get_state(), "torch": torch.get_rng_state()})

    def log_row(values: dict) -> None:
        run.log({"iteration": pos.iteration, "epoch": pos.epoch} | {c: values.get(c, "") for c in
                                                                     LOSS_COLUMNS + EVAL_COLUMNS})

    with StopRequest() as stop, progress_bar(total, pos.iteration, f"gan {config.dataset}", progress) as bar:
        while pos.iteration < total:
            batches = epoch_order(config.seed, pos.epoch, len(images)).to(device).split(config.batch_size)
            while pos.step < len(batches) and pos.iteration < total:
                real, real_labels = real_batch(images, labels, batches[pos.step], config.conditional)
                z, fake_labels = noise_batch(noise, len(real), config, device)
                decay = lr_factor(config, pos.iteration, total, batches_per_epoch)
                set_learning_rate(config.lr * decay, opt_G)
                set_learning_rate((config.d_lr or config.lr) * decay, opt_D)
                losses = adversarial_step(G, D, opt_G, opt_D, real, z, real_labels, fake_labels)
                if ema:
                    ema.update(G)
                pos.step, pos.iteration = pos.step + 1, pos.iteration + 1
                step_log.add(pos.iteration, *losses)
                bar.update()
                if pos.iteration % config.log_interval == 0:
                    log_row(dict(zip(LOSS_COLUMNS, step_log.take().mean(0).tolist())))
                if pos.iteration % config.save_interval == 0:
                    save_samples(run, sampler(), grid_z, grid_labels, pos.iteration)
                    save()
                if stop.requested:
                    save()
                    raise TrainingInterrupted(
                        f"interrupted at iteration {pos.iteration} (epoch {pos.epoch}); checkpoint saved. "
                        f"Resume with: lstmgan gan train --out {run.path} --resume", stop.signal_number)
            if pos.step == len(batches):    # an epoch ended
                finished, snapshots = pos.epoch, []
                if meter and (finished == 1 or finished % config.eval_interval == 0):
                    scores = evaluate_generator(sampler(), meter, config.eval_samples, config.seed)
                    if scores["fid"] < min(map(none_last, run.metric_column("fid")), default=math.inf):
                        snapshots.append("best")     # lowest FID so far, kept as checkpoints/best.pt
                    log_row(scores)
                    bar.set_postfix(epoch=finished, fid=f"{scores['fid']:.2f}")
                pos.epoch, pos.step = pos.epoch + 1, 0
                if config.snapshot_interval and (finished == 1 or finished % config.snapshot_interval == 0):
                    snapshots.append(f"epoch_{finished:03d}")
                save(*snapshots)
    save_samples(run, sampler(), grid_z, grid_labels, pos.iteration)
    save()
    plot_run(run)
    return {"iterations": pos.iteration, "epochs_completed": pos.epoch - 1,
            "run": str(run.path), "last": run.rows[-1] if run.rows else {}}


def none_last(value) -> float:
    """Sort key for metric cells: rows without an evaluation ('' or None) count as +inf."""
    return math.inf if value in ("", None) else float(value)


def restore(state, G, D, opt_G, opt_D, ema, noise, step_log) -> None:
    G.load_state_dict(state["generator"])
    D.load_state_dict(state["discriminator"])
    opt_G.load_state_dict(state["optimizer_G"])
    opt_D.load_state_dict(state["optimizer_D"])
    if ema:
        ema.model.load_state_dict(state["ema"])
    noise.set_state(state["rng"]["noise"])
    torch.set_rng_state(state["rng"]["torch"])
    step_log.load_state(state["step_log"])


def evaluate_generator(G, meter, n: int, seed: int) -> dict:
    """Quality scores of n samples (labels cycling 0..9 for a conditional G), as metrics.csv columns."""
    z = torch.randn(n, G.latent_dim, generator=generator(seed, 0xE7A1))
    labels = torch.arange(n) % 10 if G.conditional else None
    scores = meter.score(generate(G, z, labels), labels)
    return {k: v for k, v in scores.items() if k in EVAL_COLUMNS}


def write_val_reference(run: Run, meter, train_part, config: GANConfig) -> None:
    """The validation split's real-data floor: as many real training images as evaluation samples."""
    import json

    from ..runs import atomic_write_text

    floor = meter.reference(train_part, config.eval_samples, config.seed, with_labels=config.conditional)
    floor = {k: v for k, v in floor.items() if k in EVAL_COLUMNS}
    atomic_write_text(run.path / "val_reference.json", json.dumps(
        {"what": f"{config.eval_samples} real training images vs the {config.val_size}-image validation split",
         **floor}, indent=2) + "\n")


def save_samples(run: Run, G, z, labels, iteration: int) -> None:
    images = to_uint8(generate(G, z, labels))
    save_grid(images, run.samples / f"iter_{iteration:07d}.png", ncol=10 if G.conditional else 5)


def plot_run(run: Run) -> None:
    loss_rows = [r for r in run.rows if r["d_loss"] != ""]
    if loss_rows:
        it = [r["iteration"] for r in loss_rows]
        line_plot(run.path / "losses.png", [
            {"series": {"discriminator": (it, [r["d_loss"] for r in loss_rows]),
                        "generator": (it, [r["g_loss"] for r in loss_rows])},
             "xlabel": "iteration", "ylabel": "BCE loss", "title": "losses"},
            {"series": {"D(x)": (it, [r["d_real"] for r in loss_rows]),
                        "D(G(z))": (it, [r["d_fake"] for r in loss_rows])},
             "xlabel": "iteration", "ylabel": "mean probability", "title": "discriminator outputs",
             "ylim": (0, 1)}])
    eval_rows = [r for r in run.rows if r["fid"] != ""]
    if eval_rows:
        epochs = [r["epoch"] for r in eval_rows]
        series = {"FID": (epochs, [r["fid"] for r in eval_rows])}
        floor_path = run.path / "val_reference.json"
        if floor_path.is_file():
            import json

            floor = json.loads(floor_path.read_text())["fid"]
            series["real-data floor"] = ([epochs[0], epochs[-1]], [floor, floor])
        line_plot(run.path / "fid.png", [
            {"series": series, "xlabel": "epoch",
             "ylabel": "FID (classifier features)", "title": "FID vs the validation split", "logy": True},
            {"series": {"precision": (epochs, [r["precision"] for r in eval_rows]),
                        "recall": (epochs, [r["recall"] for r in eval_rows])},
             "xlabel": "epoch", "ylabel": "", "title": "precision / recall (k=3)", "ylim": (0, 1)}])
