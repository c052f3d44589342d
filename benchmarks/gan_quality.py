"""Quality table for several generators, with the real-data floor (what docs/gan.md shows).

    python benchmarks/gan_quality.py pretrained:mnist@1 pretrained:mnist@100 pretrained:mnist \\
        pretrained:mnist-cgan --n 10000 --json src/lstmgan/weights/metrics.json

Each generator draws n samples (labels cycling 0..9 for a conditional one) scored against
the 10,000 test images on the shipped classifier's features; the floor is n real
training images scored the same way. --json merges the rows into that file (other keys,
such as the palindrome models' accuracy, are kept).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lstmgan.gan.sample import evaluate_checkpoint

KEYS = ("fid", "inception_score", "precision", "recall", "class_kl_to_uniform", "class_histogram",
        "conditional_accuracy", "per_class_recall", "per_class_precision", "min_class_recall", "epochs_completed")


def row(name: str, m: dict) -> str:
    shares = m["class_histogram"]
    cond = f"{100 * m['conditional_accuracy']:.1f}%" if "conditional_accuracy" in m else "—"
    per_digit = f"{min(m['per_class_recall']):.3f}" if "per_class_recall" in m else "—"
    return (f"| {name} | {m['fid']:.2f} | {m['inception_score']:.2f} | {m['precision']:.3f} | {m['recall']:.3f} | "
            f"{m['class_kl_to_uniform']:.4f} | {100 * min(shares):.1f}% – {100 * max(shares):.1f}% | {cond} | "
            f"{per_digit} |")


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
        table[checkpoint] = {k: result[k] for k in KEYS if k in result}
    table[f"real data ({args.n} training images)"] = {k: v for k, v in floor.items() if k != "what"}
    print(f"n = {args.n} samples each, against the MNIST test set, on the shipped classifier's features\n")
    print("| generator | FID | IS | precision | recall | class KL to uniform | digit shares (min – max) | "
          "requested digit | lowest per-digit recall |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, metrics in table.items():
        print(row(name, metrics))
    if args.json:
        path = Path(args.json)
        merged = (json.loads(path.read_text()) if path.is_file() else {}) | table
        path.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    main()
