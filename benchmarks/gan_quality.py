"""Quality table for several generators, with the real-data floor (what docs/gan.md shows).

    python benchmarks/gan_quality.py pretrained:mnist@1 pretrained:mnist@100 pretrained:mnist \\
        pretrained:mnist-cgan --n 10000 --json src/lstmgan/gan/weights/metrics.json

Each generator draws n samples (labels cycling 0..9 for a conditional one) scored against
the 10,000 test images on the shipped classifier's features; the floor is n real
training images scored the same way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lstmgan.gan.sample import evaluate_checkpoint


def row(name: str, m: dict) -> str:
    shares = m["class_histogram"]
    cond = f"{100 * m['conditional_accuracy']:.1f}%" if "conditional_accuracy" in m else "—"
    return (f"| {name} | {m['fid']:.2f} | {m['inception_score']:.2f} | {m['precision']:.3f} | {m['recall']:.3f} | "
            f"{m['class_kl_to_uniform']:.4f} | {100 * min(shares):.1f}% – {100 * max(shares):.1f}% | {cond} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the metrics here")
    args = parser.parse_args()
    table, floor = {}, None
    for checkpoint in args.checkpoints:
        result = evaluate_checkpoint(checkpoint, args.n, args.seed, "cpu", args.data_dir, reference=floor is None)
        floor = floor or result.pop("reference_real_data")
        table[checkpoint] = {k: result[k] for k in ("fid", "inception_score", "precision", "recall",
                                                     "class_kl_to_uniform", "class_histogram", "epochs_completed")
                             if k in result} | ({"conditional_accuracy": result["conditional_accuracy"]}
                                                if "conditional_accuracy" in result else {})
    table[f"real data ({args.n} training images)"] = {k: v for k, v in floor.items() if k != "what"}
    print(f"n = {args.n} samples each, against the MNIST test set, on the shipped classifier's features\n")
    print("| generator | FID | IS | precision | recall | class KL to uniform | digit shares (min – max) | "
          "requested digit |")
    print("|---|---|---|---|---|---|---|---|")
    for name, metrics in table.items():
        print(row(name, metrics))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
