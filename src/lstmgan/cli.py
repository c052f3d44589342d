"""The `lstmgan` command: argument parsing only; the work happens in recurrent/ (Part I) and gan/ (Part II).

Every error a user can cause becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

from .config import add_flags, given, read_config_file, recorded_threads
from .devices import DEVICE_HELP
from .errors import TrainingDiverged, TrainingInterrupted, UsageError
from .gan.config import GANConfig
from .gan.mnist import DATASETS
from .recurrent.config import PalindromeConfig
from .recurrent.registry import REGISTRY, model_names, seed_study_models
from .shipped import pretrained_names
from .sweeps import ENGINES


class Parser(argparse.ArgumentParser):
    """argparse, but errors are a single line (no usage block) with exit code 2."""

    def error(self, message):
        self.exit(UsageError.exit_code, f"{self.prog}: error: {message}\n")


class HelpFormatter(argparse.HelpFormatter):
    """Every flag's help ends with its default (config options write theirs from the declaration);
    lines never break inside a hyphenated name such as pretrained:mnist-cgan."""

    def _split_lines(self, text, width):
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        default = " ".join(map(str, action.default)) if isinstance(action.default, list) else action.default
        return f"{text} (default: {default})".strip()


def add_study(p, cell_module: str, actions: tuple[str, ...]):
    p.add_argument("action", choices=actions)
    p.add_argument("plan", metavar="PLAN.toml")
    flag(p, "engine", choices=ENGINES, default="local", help="run: local processes, or Ray tasks")
    flag(p, "jobs", type=int, default=1, help="run, --engine local: seeds in parallel (processes)")
    flag(p, "address", metavar="auto|HOST:PORT", help="run, --engine ray: join this Ray cluster")
    flag(p, "max-retries", type=int, default=3, help="run, --engine ray: times a run whose process died is retried")
    flag(p, "threads", type=int, help="torch CPU threads per run (default: 1 on Ray)")
    flag(p, "quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_study, cell_module=cell_module)
    return p


def subcommand(group, name: str, help_: str):
    return group.add_parser(name, help=help_, description=help_, formatter_class=HelpFormatter)


def flag(parser, name: str, **kwargs):
    """--hyphen-name with the seed's --underscore_name as an alias."""
    names = [f"--{name}"] + ([f"--{name.replace('-', '_')}"] if "-" in name else [])
    return parser.add_argument(*names, **kwargs)


def add_device(parser):
    flag(parser, "device", default="auto", help=DEVICE_HELP)


def add_data_dir(parser):
    flag(parser, "data-dir", help=GANConfig.option_help("data_dir"))


def add_threads(parser):
    flag(parser, "threads", type=int, help="torch CPU threads (default: torch's choice)")


def add_checkpoint(parser, kind: str, more: str = ""):
    names = ", ".join(f"pretrained:{n}" for n in pretrained_names(kind)) or "none shipped"
    flag(parser, "checkpoint", required=True, metavar="PATH",
         help=f"a checkpoint or .safetensors file, or a shipped model: {names}{more}")


def add_export(parser, kind: str):
    add_checkpoint(parser, kind)
    flag(parser, "out", required=True, help="FILE.safetensors (never overwritten)")
    flag(parser, "metrics", metavar="FILE", help="a JSON file of measured metrics to store with the weights")
    parser.set_defaults(handler=cmd_export, kind=kind, raw=False)
    return parser


def add_sweep_flags(parser, config_class, skip: tuple[str, ...]) -> None:
    """A sweep's flags: each option with one or more values, then where and how the runs go."""
    parser.set_defaults(config_keys=add_flags(parser, config_class, many=True, skip=skip))
    flag(parser, "out", required=True, help="sweep directory (on a cluster: a filesystem every node sees)")
    flag(parser, "resume", action="store_true", help="keep finished runs, continue unfinished ones")
    flag(parser, "engine", choices=ENGINES, default="local", help="local processes, or Ray tasks")
    flag(parser, "jobs", type=int, default=1, help="--engine local: runs in parallel (processes)")
    flag(parser, "address", metavar="auto|HOST:PORT", help="--engine ray: join this Ray cluster (default: start a "
                                                             "local Ray instance sized to this machine)")
    flag(parser, "max-retries", type=int, default=3, help="--engine ray: times a run whose process died is retried")
    flag(parser, "gpus-per-run", type=float, default=0, help="--engine ray: GPUs each run asks for")
    flag(parser, "threads", type=int, help="torch CPU threads (and Ray CPUs) per run (default: 1 on Ray)")
    flag(parser, "quiet", action="store_true", help="no progress bar")


def add_training_flags(parser, config_class, part: str) -> list[str]:
    """A training command's flags: one per config option, then the run's own (--out, --resume, ...)."""
    keys = add_flags(parser, config_class)
    flag(parser, "config", metavar="FILE", help="start from a run's config.json; flags given here override it")
    flag(parser, "print-config", action="store_true", help="print the resolved config and exit, writing nothing")
    flag(parser, "out", help=f"run directory (default: runs/{part}-<time>)")
    flag(parser, "resume", action="store_true", help="continue the run in --out from its last checkpoint")
    flag(parser, "allow-host-change", action="store_true",
         help="--resume on another thread count, torch build or CPU capability (refused otherwise: the run would "
              "go on, but not bit-identically); recorded in config.json")
    add_threads(parser)
    flag(parser, "quiet", action="store_true", help="no progress bar")
    parser.set_defaults(config_class=config_class, config_keys=keys)
    return keys


def run_config(args) -> dict:
    """The option values of a training command: --config FILE, overridden by the flags given."""
    values = read_config_file(args.config, args.config_class) if args.config else {}
    return values | given(args, args.config_keys)


def execution_threads(args) -> int | None:
    """torch's thread count for this command: --threads, else the one a --config FILE run recorded."""
    threads = getattr(args, "threads", None)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be a positive integer (got {threads})")
    if threads is None and getattr(args, "config", None):
        threads = recorded_threads(args.config)
    return threads


def print_config(args) -> None:
    from .runs import Run, resolve_config

    out = args.out or default_out(args.config_class.kind)
    if args.resume:
        Run(out).check_can_start(resume=True)
    config = resolve_config(args.config_class, run_config(args), Run(out), args.resume)
    print(json.dumps(config.record(), indent=2))


def default_out(kind: str) -> str:
    return f"runs/{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


# ------------------------------------------------------------------ palindrome

def cmd_palindrome_train(args):
    from .recurrent.train import train

    summary = train(run_config(args), args.out or default_out("palindrome"), resume=args.resume,
                    progress=not args.quiet, allow_host_change=args.allow_host_change)
    print(f"test accuracy {summary['final_test_accuracy']:.4f} after {summary['epochs']} epochs "
          f"(best {summary['best_test_accuracy']:.4f} at epoch {summary['best_epoch']}); backend "
          f"{summary['backend']}; run saved in {summary['run']}")


def sweep_grid(args, grid: dict) -> tuple[dict, dict]:
    """(grid, fixed): options given several values join the grid, the others are fixed."""
    fixed = {}
    for key, values in given(args, args.config_keys).items():
        if len(values) > 1:
            grid[key] = values
        else:
            fixed[key] = values[0]
    return grid, fixed


def engine_options(args) -> dict:
    return {"engine": args.engine, "jobs": args.jobs, "threads": args.threads, "address": args.address,
            "max_retries": args.max_retries, "gpus_per_run": args.gpus_per_run, "progress": not args.quiet}


def cmd_palindrome_sweep(args):
    from .recurrent.sweep import sweep

    grid, fixed = sweep_grid(args, {"model": args.models, "input_length": args.lengths, "seed": args.seeds})
    results = sweep(grid, fixed, args.out, resume=args.resume, **engine_options(args))
    print(f"{len(results)} runs; table in {args.out}/results.md")


def cmd_gan_sweep(args):
    from .gan.sweep import sweep

    grid, fixed = sweep_grid(args, {"seed": args.seeds})
    results = sweep(grid, fixed, args.out, resume=args.resume, **engine_options(args))
    print(f"{len(results)} runs; table in {args.out}/results.md")


def cmd_palindrome_evaluate(args):
    from .recurrent.evaluate import evaluate_checkpoint

    print(json.dumps(evaluate_checkpoint(args.checkpoint, args.n, args.seed, args.device, args.input_length),
                     indent=2))


def cmd_palindrome_cost(args):
    from .recurrent.cost import step_cost

    cost = step_cost(PalindromeConfig.from_dict(given(args, args.config_keys), "flags"), args.steps)
    if args.json:
        print(json.dumps(cost, indent=2))
        return
    flops = cost["flops_per_step"]
    print(f"{cost['model']} at T = {cost['input_length']}, batch {cost['batch_size']}: {cost['parameters']:,} "
          f"parameters; {flops['total'] / 1e9:.3f} GFLOP per training step (products {flops['products'] / 1e9:.3f}, "
          f"attention {flops['attention'] / 1e9:.3f}, scan {flops['scan'] / 1e9:.3f}); "
          f"{cost['seconds_per_step']:.4f} s per step (median of {cost['steps_measured']}, {cost['threads']} "
          f"thread{'s' if cost['threads'] > 1 else ''}, {cost['backend']} on {cost['device']})")


def cmd_study(args):
    """`palindrome study` and `gan study`: the shared runner, with the part's cell."""
    import importlib

    from . import studies

    cell = importlib.import_module(f"lstmgan.{args.cell_module}").CELL
    plan = studies.load_plan(args.plan)
    if args.action == "run":
        engine = studies.Engine(args.engine, args.jobs, args.threads, args.address, args.max_retries,
                                progress=not args.quiet)
        studies.run(plan, cell, engine)
        studies.table(plan, cell)
        print(f"every seed of {plan.name} is in; table in {plan.log / 'results.md'}")
    elif args.action == "table":
        print(studies.table(plan, cell), end="")
    else:
        studies.plot(plan, cell)
        print(f"figure in {plan.log / getattr(cell, 'figure', 'survival.png')}")


def cmd_palindrome_inspect(args):
    from .recurrent.inspection import inspect_to_figure

    result = inspect_to_figure(args.checkpoint, args.out, args.input_length, args.seed)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{result['units_carrying']} of {result['num_hidden']} units carry the first digit at T = "
              f"{result['input_length']} (R² >= 0.5); figure in {args.out}")


def cmd_explore(args):
    from .explorer.server import serve

    serve(args.checkpoint or (), args.host, args.port, shipped=not args.no_shipped)


def cmd_build_kernels(args):
    from .recurrent.backends import kernel

    found = kernel(verbose=args.verbose)
    how = "built now" if found.built_now else "reused, built earlier"
    print(f"compiled LSTM/RNN kernel ready: {found.library} ({how}; the build took {found.build_seconds:.1f} s; "
          "operators torch.ops.lstmgan.*)")


# ------------------------------------------------------------------ gan

def cmd_gan_train(args):
    from .gan.train import train

    summary = train(run_config(args), args.out or default_out("gan"), resume=args.resume, progress=not args.quiet,
                    allow_host_change=args.allow_host_change)
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
    from .gan.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, args.n, args.seed, args.device, args.data_dir,
                                 reference=not args.no_reference, against=args.against,
                                 cluster_check=args.cluster_check, split_of=args.split_of, seeds=args.seeds)
    print(json.dumps(result, indent=2))


def cmd_export(args):
    from .loading import export_weights

    metrics = None
    if args.metrics:
        try:
            metrics = json.loads(open(args.metrics).read())
        except (OSError, ValueError):
            raise UsageError(f"--metrics {args.metrics}: not a readable JSON file") from None
    print(f"wrote {export_weights(args.checkpoint, args.out, args.kind, raw=args.raw, metrics=metrics)}")


def cmd_gan_train_classifier(args):
    from .devices import resolve_device
    from .gan.classifier import train_classifier

    meta = train_classifier(args.dataset, args.out, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir,
                            device=resolve_device(args.device), progress=not args.quiet)
    print(json.dumps(meta, indent=2))


def cmd_data_fetch(args):
    from .gan.mnist import fetch, locate

    if args.dir is None:   # data the lookup already finds serves every command: a second copy would be waste
        try:
            found = locate(args.dataset, download=False)
        except UsageError:  # not found anywhere: download into the cache below
            found = None
        if found is not None:
            print(f"{args.dataset} is already in {found}; nothing downloaded (--dir DIR downloads a copy there)")
            return
    print(f"{args.dataset} is in {fetch(args.dataset, args.dir, quiet=False)}")


# ------------------------------------------------------------------ parser

def build_parser() -> Parser:
    from .version import __version__

    parser = Parser(prog="lstmgan", description="Memory in recurrent nets, and GANs on MNIST, measured.",
                    formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"lstmgan {__version__}")
    parts = parser.add_subparsers(dest="part", required=True, metavar="{palindrome,gan,data,explore,build-kernels}")
    add_palindrome_commands(parts)
    add_gan_commands(parts)
    add_tool_commands(parts)
    return parser


def add_palindrome_commands(parts) -> None:
    """Part I: `lstmgan palindrome train|sweep|evaluate|inspect|export|cost|study`."""
    models = ", ".join(model_names())
    pal = parts.add_parser("palindrome", help=f"Part I: memory on palindromes ({models})").add_subparsers(
        dest="command", required=True, metavar="{train,sweep,evaluate,inspect,export,cost,study}")
    p = subcommand(pal, "train", f"train one model ({models})")
    add_training_flags(p, PalindromeConfig, "palindrome")
    p.set_defaults(handler=cmd_palindrome_train)

    p = subcommand(pal, "sweep", "train models x lengths x seeds; any train flag may take several values")
    flag(p, "models", nargs="+", choices=model_names(), default=seed_study_models(),
         help=f"models to train: {models}")
    flag(p, "lengths", nargs="+", type=int, default=[5, 10, 19, 25, 30, 35], help="input lengths T")
    flag(p, "seeds", nargs="+", type=int, default=[0], help="seeds (one run each)")
    add_sweep_flags(p, PalindromeConfig, skip=("model", "input_length", "seed", "tensorboard"))
    p.set_defaults(handler=cmd_palindrome_sweep)

    add_export(subcommand(pal, "export", "write a model's weights as .safetensors (no pickle), to share"),
               "palindrome")

    p = subcommand(pal, "evaluate", "score a checkpoint on freshly generated palindromes (JSON)")
    add_checkpoint(p, "palindrome")
    flag(p, "n", type=int, default=10000, help="palindromes to score")
    flag(p, "input-length", type=int, help="score at this T instead of the one the model was trained at")
    flag(p, "seed", type=int, default=12345, help="seed of the fresh palindromes")
    add_device(p)
    p.set_defaults(handler=cmd_palindrome_evaluate)

    p = subcommand(pal, "cost", "a model's parameters, training FLOPs per step (its registry formula) and seconds "
                                "per step measured here")
    keys = add_flags(p, PalindromeConfig, skip=("tensorboard", "init_from"))
    flag(p, "steps", type=int, default=5, help="training steps to time (the median is shown)")
    add_threads(p)
    flag(p, "json", action="store_true", help="print the numbers as JSON")
    p.set_defaults(handler=cmd_palindrome_cost, config_keys=keys)

    add_study(subcommand(pal, "study", "a pre-registered study from a plan file (studies/*.toml): train every "
                                       "missing seed, or write its table or survival curves"),
              "recurrent.study", ("run", "table", "plot"))

    shown = ", ".join(name for name, spec in REGISTRY.items() if spec.memory_state)
    p = subcommand(pal, "inspect", f"draw how a model with states to show ({shown}) holds the first digit: the "
                                   "units that carry it, their state and gates over t, gate saturation")
    add_checkpoint(p, "palindrome")
    flag(p, "input-length", type=int, help="the length of the palindrome drawn (default: the trained T)")
    flag(p, "seed", type=int, default=0, help="seed of the palindrome drawn (the held-out set uses its own)")
    flag(p, "out", required=True, help="FIG.png")
    flag(p, "json", action="store_true", help="also print the numbers behind the figure as JSON")
    p.set_defaults(handler=cmd_palindrome_inspect)


def add_gan_commands(parts) -> None:
    """Part II: `lstmgan gan train|sweep|sample|interpolate|evaluate|export|train-classifier`."""
    gan = parts.add_parser("gan", help="Part II: GAN on MNIST").add_subparsers(
        dest="command", required=True, metavar="{train,sweep,sample,interpolate,evaluate,export,train-classifier}")
    p = subcommand(gan, "train", "train a GAN (or a conditional GAN)")
    add_training_flags(p, GANConfig, "gan")
    p.set_defaults(handler=cmd_gan_train)

    p = subcommand(gan, "sweep", "train a grid of options x seeds (each option may take several values); "
                                 "every run scored on the validation split, one recipe table")
    flag(p, "seeds", nargs="+", type=int, default=[0], help="seeds (one run each)")
    add_sweep_flags(p, GANConfig, skip=("seed", "tensorboard"))
    p.set_defaults(handler=cmd_gan_sweep)

    for name, handler, help_ in [("sample", cmd_gan_sample, "sample images from a generator"),
                                 ("interpolate", cmd_gan_interpolate, "images along a path between two latents")]:
        p = subcommand(gan, name, help_)
        add_checkpoint(p, "gan")
        if name == "sample":
            flag(p, "n", type=int, help="number of images (default: 25; 100 for a cGAN without --digit)")
        else:
            flag(p, "steps", type=int, default=9, help="images along the path")
            flag(p, "mode", default="lerp", choices=["lerp", "slerp"], help="straight line or great circle")
        flag(p, "digit", type=int, help="digit to draw (conditional generators; default: one row per digit)")
        flag(p, "seed", type=int, default=0, help="seed of the latent vectors")
        add_device(p)
        flag(p, "out", required=True, help="FILE.png or FILE.npy")
        p.set_defaults(handler=handler)

    p = subcommand(gan, "evaluate", "FID beside the real-data floor at the same digit shares and size (and their "
                                    "ratio), IS, precision/recall, mode coverage and the copy rate (JSON)")
    add_checkpoint(p, "gan", "; or FILE.npy, uint8 images [N, 28, 28] scored as samples")
    flag(p, "against", choices=["test", "val"], default="test",
         help="the reference: the test set, or the generator's validation split (for choosing between recipes)")
    flag(p, "n", type=int, default=10000, help="samples to score")
    flag(p, "seed", type=int, default=0, help="seed of the samples")
    flag(p, "seeds", type=int, default=1, help="also FID's mean and sd over this many sampling seeds, from --seed "
                                               "on, never the one that chose the snapshot (its selection seed)")
    add_device(p)
    add_data_dir(p)
    flag(p, "no-reference", action="store_true", help="skip the real-data reference values")
    flag(p, "cluster-check", action="store_true", help="a cluster-conditioned generator: also the share of samples "
                                                        "nearest another cluster's centroid (reruns its k-means)")
    flag(p, "split-of", metavar="CHECKPOINT",
         help="score on that generator's split instead (validation split, floor and copy check): to compare "
              "generators trained on different splits")
    add_threads(p)
    p.set_defaults(handler=cmd_gan_evaluate)

    p = add_export(subcommand(gan, "export", "write a generator's weights as float16 .safetensors (no pickle)"),
                   "gan")
    flag(p, "raw", action="store_true", help="export the live generator, not its EMA")

    add_study(subcommand(gan, "study", "a pre-registered screen from a plan file (studies/*.toml): train every "
                                       "missing seed at the plan's budgets, score each on the validation split, "
                                       "or write the table of verdicts against the baseline, or its FID curves"),
              "gan.study", ("run", "table", "plot"))

    p = subcommand(gan, "train-classifier", "retrain the feature classifier behind FID")
    flag(p, "dataset", choices=list(DATASETS), default="mnist", help="which data set's classifier")
    flag(p, "epochs", type=int, default=8, help="training epochs")
    flag(p, "seed", type=int, default=0, help="seed of the init and the batch order")
    add_data_dir(p)
    add_device(p)
    flag(p, "out", help="weights file (default: the package's)")
    flag(p, "quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_gan_train_classifier)


def add_tool_commands(parts) -> None:
    """`lstmgan data fetch`, `explore` and `build-kernels`."""
    data = parts.add_parser("data", help="data sets").add_subparsers(dest="command", required=True,
                                                                      metavar="{fetch}")
    p = subcommand(data, "fetch", "download MNIST or Fashion-MNIST into the cache (checksum-verified), unless the "
                                  "data lookup already finds it ($LSTMGAN_DATA_DIR, the cache, ../shared/data)")
    p.add_argument("dataset", choices=list(DATASETS))
    flag(p, "dir", help="download into this folder, even if the data is found elsewhere (default: the user cache, "
                        "only when the lookup finds nothing)")
    p.set_defaults(handler=cmd_data_fetch)

    p = subcommand(parts, "explore", "a local web page over both parts: sample, steer and morph digits, and watch "
                                     "the LSTM remember (needs the [explorer] extra)")
    flag(p, "host", default="127.0.0.1", help="address to listen on; only this machine by default")
    flag(p, "port", type=int, default=8765, help="port (0: any free one)")
    flag(p, "checkpoint", nargs="+", action="extend", metavar="PATH",
         help="generators or palindrome models to add beside the shipped ones (checkpoints, .safetensors or "
              f"pretrained:NAME; shipped: {', '.join('pretrained:' + n for n in pretrained_names())})")
    flag(p, "no-shipped", action="store_true", help="only the --checkpoint models, not the shipped ones")
    flag(p, "threads", type=int, help="torch threads (default: torch's)")
    p.set_defaults(handler=cmd_explore)

    p = subcommand(parts, "build-kernels", "build the compiled LSTM/RNN kernel now (it is cached; once is enough)")
    flag(p, "verbose", action="store_true", help="show the compiler's output")
    p.set_defaults(handler=cmd_build_kernels)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"lstmgan: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        threads = execution_threads(args)
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        if getattr(args, "print_config", False):
            print_config(args)
        else:
            args.handler(args)
    except (UsageError, TrainingDiverged, TrainingInterrupted) as error:
        message = " ".join(str(error).split())
        if isinstance(error, TrainingDiverged):
            message = f"training diverged: {message}; stopped, the last good checkpoint is kept"
        elif isinstance(error, UsageError):
            message = f"error: {message}"
        print(f"lstmgan: {message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("lstmgan: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
