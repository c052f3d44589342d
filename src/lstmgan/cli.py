"""The `lstmgan` command: argument parsing only; the work happens in recurrent/ and gan/.

Every error a user can cause becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import fields

from .errors import TrainingDiverged, TrainingInterrupted, UsageError


class Parser(argparse.ArgumentParser):
    """argparse, but errors are a single line (no usage block) with exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def flag(parser, name: str, **kwargs):
    """--hyphen-name with the seed's --underscore_name as an alias."""
    names = [f"--{name}"] + ([f"--{name.replace('-', '_')}"] if "-" in name else [])
    return parser.add_argument(*names, **kwargs)


UNSET = argparse.SUPPRESS   # config flags that are not given stay absent, so defaults live in the configs


def given(args, names) -> dict:
    """The config options the user actually passed (a value may be None, e.g. --forget-bias uniform)."""
    return {n: getattr(args, n) for n in names if hasattr(args, n)}


def add_threads(parser):
    flag(parser, "threads", type=int, help="torch CPU threads (default: torch's choice)")
    flag(parser, "quiet", action="store_true", help="no progress bar")


# ------------------------------------------------------------------ palindrome

def _palindrome_flags(parser, many: bool = False, skip=()):
    from .recurrent.train import PalindromeConfig

    defaults = {f.name: f.default for f in fields(PalindromeConfig)}
    nargs = "+" if many else None
    spec = [("input-length", int), ("input-dim", int), ("num-classes", int), ("num-hidden", int),
            ("batch-size", int), ("learning-rate", float), ("max-epoch", int), ("max-norm", float),
            ("data-size", int), ("portion-train", float), ("patience", int), ("give-up", int),
            ("forget-bias", float), ("init-from", str)]
    spec = [(name, kind) for name, kind in spec if name not in skip]
    for name, kind in spec:
        default = defaults[name.replace("-", "_")]
        help_ = f"(default: {default})"
        if name == "forget-bias":
            kind, help_ = forget_bias, ("LSTM forget-gate bias init: a number, 'uniform' as torch (the seed), or "
                                        f"'chrono' / 'chrono:N' (chrono init, T_max = input length / N) ({help_})")
        if name == "init-from":
            help_ = "start from this palindrome checkpoint's weights (e.g. a shorter T: a curriculum)"
        flag(parser, name, type=kind, nargs=nargs, metavar=name.split("-")[-1].upper(), help=help_, default=UNSET)
    flag(parser, "device", default=UNSET, help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps "
                                               "(default: auto)")
    return [name.replace("-", "_") for name, _ in spec] + ["device"]


def forget_bias(text: str):
    """--forget-bias: a number, 'uniform' for torch's init (stored as None), or 'chrono' / 'chrono:N'."""
    from .recurrent.train import chrono_tmax

    word = text.strip().lower()
    if word in ("uniform", "none"):
        return None
    if word.startswith("chrono"):
        if chrono_tmax(word, 2) is None:
            raise argparse.ArgumentTypeError(f"chrono init needs 'chrono' or 'chrono:N' with an integer N >= 2, "
                                             f"got {text!r}")
        return word
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, 'uniform' or 'chrono[:N]', got {text!r}") from None


def cmd_palindrome_train(args):
    from .recurrent.train import train

    config = given(args, args.config_keys + ["model", "seed"])
    summary = train(config, args.out or default_out("palindrome"), resume=args.resume, progress=not args.quiet)
    best = summary["best_test_accuracy"]
    print(f"test accuracy {summary['final_test_accuracy']:.4f} after {summary['epochs']} epochs "
          f"(best {best:.4f} at epoch {summary['best_epoch']}); run saved in {summary['run']}")


def cmd_palindrome_sweep(args):
    from .recurrent.sweep import sweep

    grid = {"model": args.models, "input_length": args.lengths, "seed": args.seeds}
    fixed = {}
    for key, values in given(args, args.config_keys).items():
        if isinstance(values, list) and len(values) > 1:
            grid[key] = values
        else:
            fixed[key] = values[0] if isinstance(values, list) else values
    results = sweep(grid, fixed, args.out, resume=args.resume, jobs=args.jobs, threads=args.threads,
                    progress=not args.quiet)
    print(f"{len(results)} runs; table in {args.out}/results.md")


def cmd_palindrome_evaluate(args):
    from .recurrent.train import evaluate_checkpoint

    print(json.dumps(evaluate_checkpoint(args.checkpoint, args.n, args.seed, args.device), indent=2))


# ------------------------------------------------------------------ gan

def cmd_gan_train(args):
    from .gan.train import train

    keys = ["n_epochs", "batch_size", "lr", "b1", "b2", "latent_dim", "save_interval", "dataset", "data_dir",
            "seed", "device", "log_interval", "eval_interval", "eval_samples", "ema_decay", "snapshot_interval",
            "max_iterations", "lr_decay_from", "d_dropout", "val_size", "d_lr"]
    config = given(args, keys)
    for switch in ("conditional", "d_projection", "g_conditional_bn"):
        if getattr(args, switch):
            config[switch] = True
    summary = train(config, args.out or default_out("gan"), resume=args.resume, progress=not args.quiet)
    print(f"{summary['iterations']} iterations; run saved in {summary['run']}")


def cmd_gan_sample(args):
    from .gan.sample import check_output, sample, write_images

    out = check_output(args.out)
    images, ncol = sample(args.checkpoint, args.n, args.digit, args.seed, args.device)
    write_images(images, out, ncol)
    print(f"wrote {len(images)} samples to {out}")


def cmd_gan_interpolate(args):
    from .gan.sample import check_output, interpolate, write_images

    out = check_output(args.out)
    images, steps, _ = interpolate(args.checkpoint, args.steps, args.mode, args.digit, args.seed, args.device)
    write_images(images, out, steps)
    print(f"wrote {len(images)} interpolated images to {out}")


def cmd_gan_evaluate(args):
    from .gan.sample import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, args.n, args.seed, args.device, args.data_dir,
                                 reference=not args.no_reference)
    print(json.dumps(result, indent=2))


def cmd_gan_export(args):
    from .gan.sample import export_generator

    print(f"wrote {export_generator(args.checkpoint, args.out, raw=args.raw)}")


def cmd_gan_train_classifier(args):
    from .devices import resolve_device
    from .gan.classifier import train_classifier

    meta = train_classifier(args.dataset, args.out, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir,
                            device=resolve_device(args.device), progress=not args.quiet)
    print(json.dumps(meta, indent=2))


def cmd_data_fetch(args):
    from .gan.mnist import fetch

    print(f"{args.dataset} is in {fetch(args.dataset, args.dir, quiet=False)}")


# ------------------------------------------------------------------ parser

def default_out(kind: str) -> str:
    import time

    return f"runs/{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def build_parser() -> Parser:
    parser = Parser(prog="lstmgan", description="Memory in recurrent nets, and GANs on MNIST, measured.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"lstmgan {__version__}")
    parts = parser.add_subparsers(dest="part", required=True, metavar="{palindrome,gan,data}")

    pal = parts.add_parser("palindrome", help="Part I: LSTM / RNN on palindromes").add_subparsers(
        dest="command", required=True, metavar="{train,sweep,evaluate}")
    p = pal.add_parser("train", help="train one model")
    flag(p, "model", choices=["lstm", "rnn"], default=UNSET, help="(default: lstm)")
    p.set_defaults(config_keys=_palindrome_flags(p))
    flag(p, "seed", type=int, default=UNSET, help="(default: 0)")
    flag(p, "out", help="run directory (default: runs/palindrome-<time>)")
    flag(p, "resume", action="store_true", help="continue the run in --out from its last checkpoint")
    add_threads(p)
    p.set_defaults(handler=cmd_palindrome_train)

    p = pal.add_parser("sweep", help="train models x lengths x seeds; any train flag may take several values")
    flag(p, "models", nargs="+", choices=["lstm", "rnn"], default=["lstm", "rnn"])
    flag(p, "lengths", nargs="+", type=int, default=[5, 10, 19, 25, 30, 35])
    flag(p, "seeds", nargs="+", type=int, default=[0])
    p.set_defaults(config_keys=_palindrome_flags(p, many=True, skip=("input-length",)))
    flag(p, "out", required=True, help="sweep directory")
    flag(p, "resume", action="store_true", help="keep finished runs, continue unfinished ones")
    flag(p, "jobs", type=int, default=1, help="runs in parallel (processes)")
    add_threads(p)
    p.set_defaults(handler=cmd_palindrome_sweep)

    p = pal.add_parser("evaluate", help="score a checkpoint on fresh palindromes (JSON)")
    flag(p, "checkpoint", required=True)
    flag(p, "n", type=int, default=10000)
    flag(p, "seed", type=int, default=12345, help="seed of the fresh palindromes")
    flag(p, "device", default="auto")
    p.set_defaults(handler=cmd_palindrome_evaluate)

    gan = parts.add_parser("gan", help="Part II: GAN on MNIST").add_subparsers(
        dest="command", required=True, metavar="{train,sample,interpolate,evaluate,export,train-classifier}")
    p = gan.add_parser("train", help="train a GAN (or a conditional GAN)")
    for name, kind, help_ in [("n-epochs", int, "(default: 200)"), ("batch-size", int, "(default: 64)"),
                              ("lr", float, "(default: 0.0002)"), ("b1", float, "Adam beta1 (default: 0.5)"),
                              ("b2", float, "Adam beta2 (default: 0.999)"), ("latent-dim", int, "(default: 100)"),
                              ("save-interval", int, "iterations between sample grids + checkpoints (default: 500)"),
                              ("log-interval", int, "iterations per metrics.csv row (default: 100)"),
                              ("eval-interval", int, "epochs between FID/IS/PR evaluations (default: 0, off)"),
                              ("eval-samples", int, "samples per evaluation (default: 5000)"),
                              ("ema-decay", float, "keep an EMA of G's weights and sample from it (default: 0, off)"),
                              ("snapshot-interval", int, "epochs between kept snapshots (default: 10)"),
                              ("max-iterations", int, "stop after this many iterations (default: 0, none)"),
                              ("lr-decay-from", int, "after this epoch, decay the learning rates linearly to 0 "
                                                     "(default: 0, off: the seed's constant rate)"),
                              ("d-dropout", float, "dropout after each hidden layer of D (default: 0)"),
                              ("val-size", int, "the last N training images are held out for in-training "
                                                "evaluation and best.pt (default: 10000; 0: train on all)"),
                              ("d-lr", float, "D's own learning rate, two time scales (default: 0, same as --lr)"),
                              ("seed", int, "(default: 0)")]:
        flag(p, name, type=kind, help=help_, default=UNSET)
    flag(p, "conditional", action="store_true", help="condition both networks on the digit label (cGAN)")
    flag(p, "d-projection", action="store_true", help="cGAN: projection discriminator (Miyato & Koyama 2018)")
    flag(p, "g-conditional-bn", action="store_true", help="cGAN: per-class batch-norm scale and shift in G")
    flag(p, "dataset", choices=["mnist", "fashion-mnist"], default=UNSET, help="(default: mnist)")
    flag(p, "data-dir", default=UNSET, help="folder with the four IDX files")
    flag(p, "device", default=UNSET, help="(default: auto)")
    flag(p, "out", help="run directory (default: runs/gan-<time>)")
    flag(p, "resume", action="store_true")
    add_threads(p)
    p.set_defaults(handler=cmd_gan_train)

    for name, handler, help_ in [("sample", cmd_gan_sample, "sample images from a checkpoint"),
                                 ("interpolate", cmd_gan_interpolate, "interpolate between two latents")]:
        p = gan.add_parser(name, help=help_)
        flag(p, "checkpoint", required=True, help="a checkpoint file, or pretrained:NAME")
        if name == "sample":
            flag(p, "n", type=int, help="number of images (default: 25; 100 for a cGAN without --digit)")
        else:
            flag(p, "steps", type=int, default=9)
            flag(p, "mode", default="lerp", choices=["lerp", "slerp"])
        flag(p, "digit", type=int, help="digit to draw (conditional generators)")
        flag(p, "seed", type=int, default=0)
        flag(p, "device", default="auto")
        flag(p, "out", required=True, help="FILE.png or FILE.npy")
        p.set_defaults(handler=handler)

    p = gan.add_parser("evaluate", help="FID, IS, precision/recall, mode coverage (JSON)")
    flag(p, "checkpoint", required=True)
    flag(p, "n", type=int, default=10000)
    flag(p, "seed", type=int, default=0)
    flag(p, "device", default="auto")
    flag(p, "data-dir")
    flag(p, "no-reference", action="store_true", help="skip the real-data reference values")
    add_threads(p)
    p.set_defaults(handler=cmd_gan_evaluate)

    p = gan.add_parser("export", help="write a generator-only fp16 checkpoint")
    flag(p, "checkpoint", required=True)
    flag(p, "out", required=True)
    flag(p, "raw", action="store_true", help="export the live generator, not its EMA")
    p.set_defaults(handler=cmd_gan_export)

    p = gan.add_parser("train-classifier", help="retrain the feature classifier behind FID")
    flag(p, "dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    flag(p, "epochs", type=int, default=8)
    flag(p, "seed", type=int, default=0)
    flag(p, "data-dir")
    flag(p, "device", default="auto")
    flag(p, "out", help="weights file (default: the package's)")
    flag(p, "quiet", action="store_true")
    p.set_defaults(handler=cmd_gan_train_classifier)

    data = parts.add_parser("data", help="data sets").add_subparsers(dest="command", required=True,
                                                                      metavar="{fetch}")
    p = data.add_parser("fetch", help="download MNIST or Fashion-MNIST (checksum-verified)")
    p.add_argument("dataset", choices=["mnist", "fashion-mnist"])
    flag(p, "dir", help="target folder (default: the user cache)")
    p.set_defaults(handler=cmd_data_fetch)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"lstmgan: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _one_line_warning
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            print(f"lstmgan: error: --threads must be a positive integer (got {args.threads})", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(args.threads)
    try:
        args.handler(args)
    except UsageError as error:
        print(f"lstmgan: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"lstmgan: training diverged: {error}; stopped, the last good checkpoint is kept", file=sys.stderr)
        return 1
    except TrainingInterrupted as error:
        print(f"lstmgan: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("lstmgan: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
