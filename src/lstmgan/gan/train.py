"""Training the (conditional) GAN on MNIST-like data.

For each batch: one discriminator step on real and generated images, then one generator
step against the updated discriminator (the seed's loop). The training images live on the
device as one uint8 tensor and batches are drawn by index: no per-sample Python work.

D's options (each off by default, and off it changes nothing): --loss hinge, --r1-gamma (lazy
R1 on real images, every --r1-every D steps), --spectral-norm, --diff-augment (every image D
reads, in both steps, goes through DiffAugment), --lr-d (D's own learning rate), --d-steps k (G
steps on every k-th batch only; an iteration is one D step). G's average: --ema-decay, with
--ema-rampup (a warm-up) and --ema-slow-decay (a second, slower average, scored beside it).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import check_state
from ..devices import resolve_device
from ..errors import UsageError
from ..plots import line_plot, save_grid, to_uint8
from ..runs import Run, atomic_write_text, start_run
from ..seeding import Stream, random_stream, seed_everything
from ..training import Progress, RandomState, Session, StepLog, TrainState, epoch_batches
from . import mnist
from .architectures import GeneratorLike, build_discriminator, build_generator
from .augment import diff_augment
from .conditioning import IMAGE_SHAPE
from .config import GANConfig, config_class_for
from .metrics import sample_metrics
from .models import balanced_labels, generate
from .regularize import apply_spectral_norm, hinge_d_loss, hinge_g_loss, lazy_r1_weight, r1_due, r1_penalty

LOSS_COLUMNS = ["d_loss", "g_loss", "d_real", "d_fake"]
GRID_SIZE = 25                      # a 5 x 5 progress grid; a cGAN's grid is 10 per digit instead


def train(config: GANConfig | dict, out, resume: bool = False, progress: bool = True,
          allow_host_change: bool = False) -> dict:
    """Train a GAN into run directory `out`; returns a summary (iterations, last losses, last scores, what it cost).
    A resume on another thread count, torch build or CPU capability needs `allow_host_change`."""
    run, config, checkpoint = start_run(config_class_for(saved_run_config(out) if resume else None), config, out,
                                        resume, allow_host_change)
    device = resolve_device(config.device)
    data, validation = mnist.split_off_validation(mnist.load(config.dataset, "train", config.data_dir),
                                                  config.val_size, config.val_split, config.val_seed)
    scorer = validation_scorer(config, validation, data, device)
    conditions, centroids = training_conditions(config, data)
    label_shares = torch.bincount(data.labels, minlength=mnist.NUM_CLASSES).double()
    images, labels = data.images.to(device), conditions.to(device)

    seed_everything(config.seed)
    G = build_generator(config).to(device)
    if config.clusters:
        G.set_cluster_prior(torch.bincount(conditions, minlength=config.clusters))
    D = discriminator(config).to(device)
    opt_G = adam(G.parameters(), config.lr, (config.b1, config.b2))
    opt_D = adam(D.parameters(), d_learning_rate(config), (config.b1, config.b2))
    ema = EMA(G, config.ema_decay) if config.ema_decay else None
    ema_slow = EMA(G, config.ema_slow_decay) if config.ema_slow_decay else None
    noise = random_stream(config.seed, Stream.GAN_NOISE)
    # DiffAugment's draws come from a stream of their own: the noise, and runs without it, stay as they were
    augment = random_stream(config.seed, Stream.DIFF_AUGMENT) if config.diff_augment else None
    seen = (lambda x: diff_augment(x, augment)) if augment else (lambda x: x)   # what D reads of an image batch
    where, step_log = Progress(), StepLog(LOSS_COLUMNS, config.log_interval, device)
    state = TrainState(where, step_log, generator=G, discriminator=D, optimizer_G=opt_G, optimizer_D=opt_D,
                       rng=RandomState(noise=noise, **({"augment": augment} if augment else {})),
                       **({"ema": ema} if ema else {}), **({"ema_slow": ema_slow} if ema_slow else {}))
    if checkpoint:
        restore(state, checkpoint, run.last_checkpoint)
    run.start(config, resolved_device=str(device), train_size=len(data))
    if config.tensorboard:
        run.mirror_to_tensorboard("iteration", next_step=where.iteration + 1)
    if scorer and not (run.path / "val_reference.json").is_file():
        write_val_reference(run, scorer, data, config)

    sampler = lambda: ema.model if ema else G   # noqa: E731 — the generator whose samples we show and keep
    batches_per_epoch = math.ceil(len(images) / config.batch_size)
    total = min(config.n_epochs * batches_per_epoch, config.max_iterations or math.inf)
    grid = fixed_noise(config)
    with Session(run, config, state, total, progress, f"gan {config.dataset}", model=sampler) as session:
        while where.iteration < total:
            for index in epoch_batches(config.seed, where, len(images), config.batch_size, device):
                if where.iteration == total:
                    break
                real, real_labels = real_batch(images, labels, index, config.num_conditions > 0)
                z, fake_labels = noise_batch(noise, len(real), config, device, G, label_shares)
                set_learning_rates(config, lr_factor(config, where.iteration, total, batches_per_epoch), opt_G, opt_D)
                g_step = (where.iteration + 1) % config.d_steps == 0     # --d-steps k: G steps on every k-th
                # D step: tell real images from generated ones (lazy R1: D's gradient on the real ones, when due)
                with contextlib.nullcontext() if g_step else torch.no_grad():
                    fake = G(z, fake_labels)
                with_r1 = config.r1_gamma > 0 and r1_due(where.iteration, config.r1_every)
                d_loss, d_logits = discriminator_loss(D, seen(real.requires_grad_(with_r1)), seen(fake.detach()),
                                                      real_labels, fake_labels, config.loss)
                if with_r1:
                    optimize(opt_D, d_loss + r1_weight(config) * r1_penalty(d_logits[:len(real)], real))
                else:
                    optimize(opt_D, d_loss)
                if g_step:   # G step: make the updated D call the same generated images real
                    with frozen(D):
                        g_loss = generator_loss(D, seen(fake), fake_labels, config.loss)
                    optimize(opt_G, g_loss)
                    for average in (ema, ema_slow):
                        if average:
                            average.update(G, ema_decay_at(average.decay, config, where.iteration + 1))
                else:        # logged: G's loss on these images against D before its step (no G step, no cost)
                    g_loss = generator_loss_of_logits(d_logits[len(real):], config.loss)
                where.advance()
                step_log.add(where.iteration, d_loss.detach(), g_loss.detach(), *mean_probabilities(d_logits))
                if where.iteration % config.log_interval == 0:
                    log_row(run, config, where, dict(zip(LOSS_COLUMNS, step_log.take().mean(0).tolist())))
                if where.iteration % config.save_interval == 0:
                    save_samples(run, sampler(), grid, where.iteration)
                    session.save()
                session.step_done()
            if where.step == batches_per_epoch:            # an epoch ended
                snapshots = end_of_epoch(run, config, scorer, sampler(), where, centroids, ema_slow)
                where.next_epoch()
                session.save(*snapshots)
        if where.iteration % config.save_interval:         # the last grid, unless it was just saved
            save_samples(run, sampler(), grid, where.iteration)
        session.save()
    summary = {"iterations": where.iteration, "epochs_completed": where.epoch - 1, "run": str(run.path),
               "last": run.rows[-1] if run.rows else {}}
    if scorer:   # the final generator on the validation split (what a sweep's table compares)
        summary["validation"] = scorer.score_generator(sampler(), config.eval_samples, config.seed, centroids)
    elif centroids is not None:   # no evaluations: the cluster check alone needs no classifier
        summary["cluster_mismatch"] = cluster_mismatch_of(sampler(), config.eval_samples, config.seed, centroids)
    run.finish(config, final_scores(run))
    plot_run(run, config.loss)
    summary["cost"] = cost_record(session, where.pieces, device)
    atomic_write_text(run.path / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def cost_record(session: Session, pieces: int, device) -> dict:
    """What the run cost up to now, summed over the pieces it ran in, and on what (the last piece's host)."""
    wall, cpu = session.elapsed()
    return {"cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 2), "pieces": pieces,
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "device": str(device)}


def discriminator_loss(D, real, fake, real_labels=None, fake_labels=None,
                       loss: str = "bce") -> tuple[torch.Tensor, torch.Tensor]:
    """D's loss and its logits, real then generated. bce: (real loss + fake loss) / 2, BCE of D's logits,
    real images against target 1 and generated ones against 0; hinge: E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))].

    Real and generated images go through D as two batches, so that a D with batch norm never
    normalises one with the statistics of the other.
    """
    real_logits, fake_logits = D(real, real_labels), D(fake, fake_labels)
    if loss == "hinge":
        return hinge_d_loss(real_logits, fake_logits), torch.cat([real_logits, fake_logits])
    real_loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return (real_loss + fake_loss) / 2, torch.cat([real_logits, fake_logits])


def generator_loss(D, fake, fake_labels=None, loss: str = "bce") -> torch.Tensor:
    """bce: the non-saturating generator loss, BCE of D(G(z)) against the 'real' target 1; hinge: −E[D(G(z))]."""
    return generator_loss_of_logits(D(fake, fake_labels), loss)


def generator_loss_of_logits(logits: torch.Tensor, loss: str = "bce") -> torch.Tensor:
    if loss == "hinge":
        return hinge_g_loss(logits)
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def discriminator(config: GANConfig) -> torch.nn.Module:
    """D, freshly initialised, on the CPU; with --spectral-norm every layer of its own wrapped (its power-iteration
    vectors drawn from torch's global generator after D's weights, so D's weights are those of a run without)."""
    D = build_discriminator(config)
    return apply_spectral_norm(D) if config.spectral_norm else D


def r1_weight(config: GANConfig) -> float:
    """The weight of `r1_penalty` on a D step that adds it: γ/2 · k (lazy, every k steps) for a D loss that is the
    sum of a real and a fake term, as the R1 papers write it (--loss hinge); the seed's BCE loss is that sum
    halved, so the penalty is halved with it (γ/4 · k) and --r1-gamma means the papers' γ for both losses."""
    gamma = config.r1_gamma / 2 if config.loss == "bce" else config.r1_gamma
    return lazy_r1_weight(gamma, config.r1_every)


def d_learning_rate(config: GANConfig) -> float:
    """D's Adam rate before any decay: --lr-d, or --lr when it is 0."""
    return config.lr_d or config.lr


def restore(state: TrainState, checkpoint: dict, path) -> None:
    """Continue from `checkpoint`: networks whose saved weights do not fit (another architecture, other
    options) are refused in one line before anything is loaded."""
    for name, part in state.parts.items():
        module = part.model if isinstance(part, EMA) else part
        if isinstance(module, torch.nn.Module):
            check_state(module, checkpoint.get(name), path, name)
    state.load_state_dict(checkpoint)


def optimize(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@contextlib.contextmanager
def frozen(module: torch.nn.Module):
    """No weight gradients for `module` inside the block (D during the G step: they would be thrown away)."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


def mean_probabilities(d_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean D(x) over the real half, mean D(G(z)) over the generated half) of one D batch."""
    probs = torch.sigmoid(d_logits.detach())
    n = len(probs) // 2
    return probs[:n].mean(), probs[n:].mean()


def adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused single-kernel update where this torch build has it for the parameters' device."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, TypeError, ValueError):   # older torch, or no fused kernel for this device
        return torch.optim.Adam(params, lr=lr, betas=betas)


def training_conditions(config: GANConfig, data) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What the networks are conditioned on per training image: its digit label, or with --clusters
    its k-means cluster (computed from the pixels alone; the labels are never read then); and the
    clusters' pixel centroids [K, 784] in [0, 1] (None without --clusters), kept for the cluster check."""
    if not config.clusters:
        return data.labels, None
    from .clusters import pixel_kmeans

    return pixel_kmeans(data.images, config.clusters, config.seed)


def real_batch(images, labels, index, conditioned: bool):
    """Images of one batch as float [N, 1, 28, 28] in [-1, 1] (uint8 [0, 255] on the device), and labels."""
    return images[index].float().div_(127.5).sub_(1).view(-1, *IMAGE_SHAPE), (labels[index] if conditioned else None)


def noise_batch(noise: torch.Generator, n: int, config: GANConfig, device, G: GeneratorLike,
                label_shares: torch.Tensor | None = None):
    """z ~ N(0, I) from the run's own noise stream, and the labels D sees with G(z): for a conditional G
    digits at the training part's `label_shares` (--fake-labels uniform: equal shares, as runs before the
    option), the cluster z picks for a cluster-conditioned one, else None."""
    z = torch.randn(n, config.latent_dim, generator=noise).to(device)
    if config.conditional and (config.fake_labels == "uniform" or label_shares is None):
        return z, torch.randint(config.num_classes, (n,), generator=noise).to(device)
    if config.conditional:
        return z, torch.multinomial(label_shares, n, replacement=True, generator=noise).to(device)
    return z, (G.cluster_of(z) if config.clusters else None)


def lr_factor(config: GANConfig, iteration: int, total: int, batches_per_epoch: int) -> float:
    """1 (the seed's constant rates), or with --lr-decay-from E a linear fall to 0 after epoch E."""
    start = config.lr_decay_from * batches_per_epoch
    if not config.lr_decay_from or iteration < start:
        return 1.0
    return max(0.0, 1 - (iteration - start) / max(1, total - start))


def set_learning_rates(config: GANConfig, factor: float, opt_G, opt_D) -> None:
    for optimizer, lr in ((opt_G, config.lr), (opt_D, d_learning_rate(config))):
        for group in optimizer.param_groups:
            group["lr"] = lr * factor


def ema_decay_at(decay: float, config: GANConfig, iteration: int) -> float:
    """The EMA's decay after `iteration` D steps: `decay`, or with --ema-rampup R StyleGAN2-ADA's warm-up,
    β = 0.5^(batch / h) with h = min(the half-life decay gives, R × images seen), in images."""
    if not config.ema_rampup:
        return decay
    half_life = config.batch_size * math.log(0.5) / math.log(decay)       # decay = 0.5^(batch / half_life)
    return 0.5 ** (config.batch_size / max(min(half_life, config.ema_rampup * iteration * config.batch_size), 1e-8))


class EMA:
    """Exponential moving average of a generator's weights, θ_ema ← θ_ema + (1 − β)(θ − θ_ema) with β = `decay`
    (or the step's warm-up value, see ema_decay_at); batch-norm statistics are copied as they are."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, decay: float | None = None) -> None:
        beta = self.decay if decay is None else decay
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()), 1 - beta)
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            mine.copy_(theirs)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)


def fixed_noise(config: GANConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The noise (and labels) behind every progress grid of a run: 25, or 10 per digit for a cGAN."""
    n = 10 * config.num_classes if config.conditional else GRID_SIZE
    z = torch.randn(n, config.latent_dim, generator=random_stream(config.seed, Stream.PROGRESS_GRID))
    return z, balanced_labels(n, grouped=True) if config.conditional else None


def log_row(run: Run, config: GANConfig, where: Progress, values: dict) -> None:
    """One metrics.csv row: the loss means of a window, or the scores of an evaluation ('' elsewhere)."""
    run.log({"iteration": where.iteration, "epoch": where.epoch} | {c: values.get(c, "") for c in
                                                                    LOSS_COLUMNS + score_columns(config, run)})


def score_columns(config: GANConfig, run: Run) -> list[str]:
    """The evaluation columns of metrics.csv: the metrics table's (a cluster-conditioned run's add its cluster
    check); a resumed run keeps those its file began with (the columns of a file never change)."""
    if run.rows:
        return [c for c in run.rows[0] if c not in ("iteration", "epoch", *LOSS_COLUMNS)]
    return sample_metrics(clustered=bool(config.clusters), slow_ema=bool(config.ema_slow_decay))


def end_of_epoch(run: Run, config: GANConfig, scorer, G, where: Progress, centroids=None,
                 ema_slow: EMA | None = None) -> list[str]:
    """Evaluate when due (on the validation split; a slower EMA's FID beside, on the same noise); the snapshots
    to keep: "best" (chosen by G's FID alone) and "epoch_NNN"."""
    snapshots, epoch = [], where.epoch
    if scorer and (epoch == 1 or epoch % config.eval_interval == 0):
        scores = scorer.score_generator(G, config.eval_samples, config.seed, centroids)
        if ema_slow:
            scores["fid_ema_slow"] = scorer.score_generator(ema_slow.model, config.eval_samples, config.seed)["fid"]
        if scores["fid"] < min(map(none_last, run.metric_column("fid")), default=math.inf):
            snapshots.append("best")     # lowest validation FID so far, kept as checkpoints/best.pt
        log_row(run, config, where, scores)
    if config.snapshot_interval and (epoch == 1 or epoch % config.snapshot_interval == 0):
        snapshots.append(f"epoch_{epoch:03d}")
    return snapshots


def none_last(value) -> float:
    """Sort key for metric cells: rows without an evaluation ('' or None) count as +inf."""
    return math.inf if value in ("", None) else float(value)


def saved_run_config(out) -> dict | None:
    """The options of the run `--resume` continues (None when there is none: start_run says so)."""
    try:
        return Run(out).saved_config(GANConfig)
    except UsageError:
        return None


def validation_scorer(config: GANConfig, validation, train_part, device):
    """The scorer of in-training evaluations: against the validation split, its floor drawn from the
    training part (None when there are none)."""
    if not config.eval_interval:
        return None
    from .metrics import Scorer

    return Scorer(config.dataset, validation, train_part, None, device, reference_name="val")


def cluster_mismatch_of(G, n: int, seed: int, centroids: torch.Tensor) -> float:
    """The cluster check of n samples from the evaluation noise stream, without a quality scorer."""
    from .metrics import cluster_mismatch, evaluation_noise

    return cluster_mismatch(G, generate(G, evaluation_noise(G.latent_dim, n, seed)), seed, centroids).share


def write_val_reference(run: Run, scorer, train_part, config: GANConfig) -> None:
    """The validation split's real-data floor for eval_samples images at the shares they are scored at,
    with its noise band (see evaluate.py)."""
    labels = scorer.labels_for(config.eval_samples) if config.conditional else None
    floor = scorer.floor(config.eval_samples, labels, config.seed)
    scores = scorer.floor_metrics(config.eval_samples, labels, config.seed)
    atomic_write_text(run.path / "val_reference.json", json.dumps(
        {"what": f"{config.eval_samples} real training images vs the {config.val_size}-image "
                 f"{config.val_split} validation split",
         **{k: v for k, v in scores.items() if k in sample_metrics()}, **floor}, indent=2) + "\n")


def final_scores(run: Run) -> dict:
    """The last losses and the last evaluation's scores (TensorBoard's hyperparameter view)."""
    final = {}
    for row in run.rows:
        final.update({k: v for k, v in row.items() if k not in ("iteration", "epoch") and v != ""})
    return final


def save_samples(run: Run, G, grid, iteration: int) -> None:
    z, labels = grid
    picture = save_grid(to_uint8(generate(G, z, labels)), run.samples / f"iter_{iteration:07d}.png",
                        ncol=10 if G.conditional else 5)
    run.log_image("samples", np.asarray(picture), iteration)


def plot_run(run: Run, loss: str = "bce") -> None:
    loss_rows = [r for r in run.rows if r["d_loss"] != ""]
    if loss_rows:
        it = [r["iteration"] for r in loss_rows]
        line_plot(run.path / "losses.png", [
            {"series": {"discriminator": (it, [r["d_loss"] for r in loss_rows]),
                        "generator": (it, [r["g_loss"] for r in loss_rows])},
             "xlabel": "iteration", "ylabel": "BCE loss" if loss == "bce" else f"{loss} loss",
             "title": "losses"},
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
            saved = json.loads(floor_path.read_text())
            floor = saved.get("fid_floor", saved["fid"])    # the mean of the draws (runs before it: one draw)
            series["real-data floor"] = ([epochs[0], epochs[-1]], [floor, floor])
        line_plot(run.path / "fid.png", [
            {"series": series, "xlabel": "epoch", "ylabel": "FID (classifier features)",
             "title": "FID vs the validation split", "logy": True},
            {"series": {"precision": (epochs, [r["precision"] for r in eval_rows]),
                        "recall": (epochs, [r["recall"] for r in eval_rows])},
             "xlabel": "epoch", "ylabel": "", "title": "precision / recall (k=3)", "ylim": (0, 1)}])
