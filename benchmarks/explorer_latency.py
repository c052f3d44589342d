"""The explorer's latency, through its own HTTP endpoints, against the same work done in-process.

A server over the shipped models runs in this process (a thread, 127.0.0.1); a client sends
REQUESTS requests of each kind over HTTP, one at a time, as the page does, and the wall time of
each (request sent to PNG received) is recorded. Beside it, the reference: the same images drawn
and encoded by a direct call, without HTTP. Targets (issue 22): a new 25-image grid <= 150 ms at
p95, one slider step (one interpolated image) <= 50 ms at p95, on 2 cores.

    python benchmarks/explorer_latency.py --threads 2
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
import urllib.parse
import urllib.request

import torch

from lstmgan.explorer.catalog import GRID_COLUMNS, build_catalog
from lstmgan.explorer.server import Background
from lstmgan.plots import image_grid

TARGETS_MS = {"grid": 150.0, "slider step": 50.0}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def timed(call, n: int) -> list[float]:
    times = []
    for k in range(n):
        start = time.perf_counter()
        call(k)
        times.append(1000 * (time.perf_counter() - start))
    return times


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def encode(picture) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--generator", default="pretrained:mnist", help="shipped generator to drive")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    catalog = build_catalog()
    G = catalog.generator(args.generator)
    rows = {}
    with Background(catalog) as base:
        def grid_url(k):
            return base + "api/grid.png?" + urllib.parse.urlencode({"generator": G.name, "seed": k})

        def slider_url(k):   # the slider walking 0 -> 1 and back, between cells 0 and 24 of grid 7
            t = abs((k % 100) - 50) / 50
            return base + "api/between.png?" + urllib.parse.urlencode(
                {"generator": G.name, "seed": 7, "a": 0, "b": 24, "t": f"{t:.2f}"})

        for warm in range(10):
            fetch(grid_url(warm)), fetch(slider_url(warm))
        rows["grid"] = {
            "http": timed(lambda k: fetch(grid_url(k)), args.requests),
            "direct": timed(lambda k: encode(image_grid(G.grid(k), GRID_COLUMNS, scale=1)), args.requests)}
        rows["slider step"] = {
            "http": timed(lambda k: fetch(slider_url(k)), args.requests),
            "direct": timed(lambda k: encode(image_grid(G.between(7, 0, 24, abs((k % 100) - 50) / 50)[None], 1,
                                                         pad=0, scale=4)), args.requests)}
    print(f"explorer latency, {args.requests} requests each, {args.generator}, torch threads {args.threads}")
    print(f"{'request':<12} {'HTTP p50':>9} {'HTTP p95':>9} {'direct p95':>11} {'HTTP/direct':>12} "
          f"{'target p95':>11} {'p95/target':>11}")
    results = {}
    for name, times in rows.items():
        p50, p95, direct = percentile(times["http"], 50), percentile(times["http"], 95), percentile(times["direct"], 95)
        results[name] = {"http_p50_ms": p50, "http_p95_ms": p95, "direct_p95_ms": direct,
                         "target_p95_ms": TARGETS_MS[name]}
        print(f"{name:<12} {p50:8.1f}ms {p95:8.1f}ms {direct:10.1f}ms {p95 / direct:11.2f}x "
              f"{TARGETS_MS[name]:9.0f}ms {p95 / TARGETS_MS[name]:10.2f}x")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"threads": args.threads, "requests": args.requests, "generator": args.generator,
                       "results": results}, out, indent=1)


if __name__ == "__main__":
    main()
