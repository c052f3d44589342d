"""Re-score every shipped generator under issue 52's protocol: 10,000 samples, FID as mean ± sd over 5 sampling
seeds that skip each run's selection seed, the copy threshold calibrated on the validation split (the test set's
rate beside), the floor at the same shares and size; on the test set and on each generator's own validation split.

    python benchmarks/gan_rescore.py run            # resumable: a generator already scored is skipped
    python benchmarks/gan_rescore.py table          # the markdown table of docs/gan.md §0 from the logged JSON

Each result is docs/log/gan-rescore/<name>-<reference>.json (`gan evaluate`'s JSON, as printed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lstmgan.gan.evaluate import evaluate_checkpoint

LOG = Path(__file__).resolve().parent.parent / "docs" / "log" / "gan-rescore"
SHIPPED = ("mnist@1", "mnist@100", "mnist@200", "mnist", "mnist-cgan", "mnist-conv-cgan")
CLUSTERED = {"mnist"}                    # cluster-conditioned: also the cluster check
N, FIRST_SEED, SEEDS = 10000, 1, 5


def run() -> None:
    LOG.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED:
        for against in ("test", "val"):
            out = LOG / f"{name}-{against}.json"
            if out.is_file():
                continue
            started, cpu = time.perf_counter(), time.process_time()
            result = evaluate_checkpoint(f"pretrained:{name}", N, FIRST_SEED, "cpu", against=against,
                                         cluster_check=name in CLUSTERED, seeds=SEEDS)
            result["scoring_cost"] = {"wall_seconds": round(time.perf_counter() - started, 1),
                                      "cpu_seconds": round(time.process_time() - cpu, 1)}
            out.write_text(json.dumps(result, indent=2) + "\n")
            print(f"{name} against {against}: FID {result['over_seeds']['fid_mean']:.2f} ± "
                  f"{result['over_seeds']['fid_sd']:.2f}", flush=True)


def table() -> str:
    lines = ["| generator | reference | FID mean ± sd (seeds 1–5) | floor ± sd | ratio (mean) | ratio band | precision "
             "| recall | lowest digit recall | requested digit | copy rate (test set's) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in SHIPPED:
        for against in ("test", "val"):
            path = LOG / f"{name}-{against}.json"
            if not path.is_file():
                continue
            m = json.loads(path.read_text())
            over, (low, high) = m["over_seeds"], m["fid_ratio_band"]
            low_recall = f"{m['min_class_recall']:.3f}" if "min_class_recall" in m else "—"
            asked = f"{100 * m['conditional_accuracy']:.1f}%" if "conditional_accuracy" in m else "—"
            lines.append(f"| `pretrained:{name}` | {against} | {over['fid_mean']:.2f} ± {over['fid_sd']:.2f} | "
                         f"{m['fid_floor']:.2f} ± {m['fid_floor_sd']:.2f} | {over['fid_ratio_mean']:.2f} | "
                         f"{low:.2f}–{high:.2f} | {m['precision']:.3f} | {m['recall']:.3f} | {low_recall} | {asked} | "
                         f"{100 * m['copy_rate']:.2f}% ({100 * m['copy_rate_test']:.2f}%) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("run", "table"))
    args = parser.parse_args()
    if args.action == "run":
        run()
    print(table(), end="")


if __name__ == "__main__":
    main()
