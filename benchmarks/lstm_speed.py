"""Our LSTM's backends against torch.nn.LSTM, side by side in one process (and the RNN against nn.RNN).

A training step is forward + backward + gradient clipping + Adam on a batch of palindrome-like
inputs (batch 100, hidden 128, input_dim 1 by default). Implementations run in interleaved
rounds; each cell is the median per-step time. "GEMMs alone" times only the matrix products a
step of ours must do (T recurrent products forward, T backward, the weight gradients), the
floor any implementation of these equations is read against. Peak memory of one training step
is measured in a fresh subprocess per implementation (the rise of the resident-set high-water mark).

    python benchmarks/lstm_speed.py --threads 1
    python benchmarks/lstm_speed.py --threads 2
    python benchmarks/lstm_speed.py --threads 2 --only-long --long 10000
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from lstmgan.recurrent import LSTM, VanillaRNN, backends


def torch_lstm(input_dim, hidden, classes):
    lstm, head = nn.LSTM(input_dim, hidden, batch_first=True), nn.Linear(hidden, classes)
    return (lambda x: head(lstm(x)[0][:, -1])), list(lstm.parameters()) + list(head.parameters())


def torch_rnn(input_dim, hidden, classes):
    rnn, head = nn.RNN(input_dim, hidden, batch_first=True), nn.Linear(hidden, classes)
    return (lambda x: head(rnn(x)[0][:, -1])), list(rnn.parameters()) + list(head.parameters())


def ours(cls, backend):
    def build(input_dim, hidden, classes):
        model = cls(input_dim, hidden, classes, backend=backend)
        return model, list(model.parameters())
    return build


def gemms_alone(input_dim, hidden, classes, T_and_B):
    """Only the GEMMs of one of our training steps (h_0 = 0 makes step 1's three of them vanish)."""
    T, B = T_and_B
    W_h = torch.randn(4 * hidden, hidden)
    h, a = torch.randn(B, hidden), torch.randn(B, 4 * hidden)
    deltas, hiddens = torch.randn((T - 1) * B, 4 * hidden), torch.randn((T - 1) * B, hidden)

    def run(_x):
        for _ in range(T - 1):
            torch.mm(h, W_h.t(), out=a)        # forward: W_h h_{t-1}
        for _ in range(T - 1):
            torch.mm(a, W_h, out=h)            # backward: W_hᵀ δa_t
        deltas.t().mm(hiddens)                 # Σ_t δa_t h_{t-1}ᵀ
    return run, []


def training_step(forward, params, x, y, optimizer):
    loss = F.cross_entropy(forward(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(params, 10.0)
    optimizer.step()


def measure(builders: dict, x, y, rounds: int, steps: int, train: bool, hidden: int = 128) -> dict:
    """Median seconds per step for each builder, measured in interleaved rounds."""
    torch.manual_seed(0)
    runners = {}
    for name, build in builders.items():
        if name == "GEMMs alone":
            forward, _ = build(x.shape[-1], hidden, 10, (x.shape[1], x.shape[0]))
            runners[name] = lambda f=forward: f(x)
            continue
        forward, params = build(x.shape[-1], hidden, 10)
        if train:
            optimizer = torch.optim.Adam(params, lr=1e-3)
            runners[name] = lambda f=forward, p=params, o=optimizer: training_step(f, p, x, y, o)
        else:
            def infer(f=forward):
                with torch.no_grad():
                    f(x)
            runners[name] = infer
    times = {name: [] for name in runners}
    for run in runners.values():       # warm-up
        for _ in range(2):
            run()
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            for _ in range(steps):
                run()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


PEAK_PROBE = """
import json, sys, time, torch, torch.nn.functional as F
sys.path[:0] = {path!r}
from benchmarks.lstm_speed import torch_lstm, ours, training_step
from lstmgan.recurrent import LSTM
torch.set_num_threads({threads})
name, T, D, segment = {name!r}, {T}, {input_dim}, {segment}
build = torch_lstm if name == "torch.nn.LSTM" else ours(LSTM, "compiled" if segment else name)
forward, params = build(D, 128, 10)
if segment:
    forward.bptt_segment = segment
x = F.one_hot(torch.randint(10, (100, T)), 10).float() if D == 10 else torch.randn(100, T, 1)
y = torch.randint(0, 10, (100,))
optimizer = torch.optim.Adam(params)
training_step(forward, params, x, y, optimizer)       # allocator and optimizer state warm
open("/proc/self/clear_refs", "w").write("5")        # reset the resident-set high-water mark
def high_water():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
before = high_water()
start = time.perf_counter()
training_step(forward, params, x, y, optimizer)
print(json.dumps({{"mb": high_water() - before, "s": time.perf_counter() - start}}))
"""


def peak_memory(name: str, T: int, threads: int, input_dim: int = 1, segment: int = 0) -> dict | None:
    """{"mb": rise of the resident-set high-water mark during one training step (Linux), "s": its time},
    in a fresh process; `segment` k: our compiled kernel with checkpointed BPTT."""
    code = PEAK_PROBE.format(path=sys.path[:1] + ["."], threads=threads, name=name, T=T, input_dim=input_dim,
                             segment=segment)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else None


def peak_memory_mb(name: str, T: int, threads: int) -> float | None:
    result = peak_memory(name, T, threads)
    return result["mb"] if result else None


def long_sequences(T: int, threads: int) -> None:
    """Peak memory and time of one training step at a long T: torch, our kernel, our kernel checkpointed."""
    k = math.ceil(math.sqrt(T))
    runs = {"torch.nn.LSTM": peak_memory("torch.nn.LSTM", T, threads, 10),
            "compiled": peak_memory("compiled", T, threads, 10),
            f"compiled, checkpointed (k = {k})": peak_memory("compiled", T, threads, 10, segment=k)}
    ref, unsegmented = runs["torch.nn.LSTM"], runs["compiled"]
    print(f"\nOne training step at T = {T} (batch 100, hidden 128, one-hot input_dim 10; fresh process each; "
          "memory: rise of the resident high-water mark):\n")
    print(table(["implementation", "peak MB", "/ torch", "step s", "/ torch", "/ compiled"],
                [[name, f"{r['mb']:.0f}", f"**{r['mb'] / ref['mb']:.3f}**", f"{r['s']:.2f}", f"{r['s'] / ref['s']:.2f}",
                  f"**{r['s'] / unsegmented['s']:.2f}**"] if r else [name, "n/a", "—", "—", "—", "—"]
                 for name, r in runs.items()]))


def table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                     ["| " + " | ".join(row) + " |" for row in rows])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[5, 19, 35, 100, 1000])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--inference-batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-per-gate-from", type=int, default=1000, help="leave the slow per-gate path out "
                        "from this T on")
    parser.add_argument("--long", type=int, nargs="*", default=[], metavar="T",
                        help="also measure one training step at these long T: peak memory and time of torch, the "
                             "kernel and the kernel with checkpointed BPTT")
    parser.add_argument("--only-long", action="store_true", help="measure only the --long lengths")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    backends.build_kernel()
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} thread(s), batch {args.batch}, input_dim 1, median of "
          f"{args.rounds} interleaved rounds; CPU capability {torch.backends.cpu.get_cpu_capability()}\n")

    if args.only_long:
        for T in args.long:
            long_sequences(T, threads)
        return
    rows = []
    for T in args.lengths:
        x, y = torch.randn(args.batch, T, 1), torch.randint(0, 10, (args.batch,))
        builders = {"torch.nn.LSTM": torch_lstm, "compiled": ours(LSTM, "compiled"), "eager": ours(LSTM, "eager"),
                    "GEMMs alone": gemms_alone}
        if T < args.skip_per_gate_from:
            builders["per-gate"] = ours(LSTM, "per-gate")
        rounds = args.rounds if T < 1000 else max(3, args.rounds // 3)
        t = measure(builders, x, y, rounds, max(1, 300 // T), train=True)
        ref = t["torch.nn.LSTM"]
        rows.append([str(T), f"{1e3 * ref:.2f}", f"{1e3 * t['compiled']:.2f}", f"**{t['compiled'] / ref:.2f}**",
                     f"{t['eager'] / ref:.2f}", f"{t['per-gate'] / ref:.2f}" if "per-gate" in t else "—",
                     f"{1e3 * t['GEMMs alone']:.2f}", f"{t['GEMMs alone'] / ref:.2f}"])
    print("Training step (hidden 128), ours over torch.nn.LSTM:\n")
    print(table(["T", "torch.nn.LSTM ms", "compiled ms", "compiled / torch", "eager / torch", "per-gate / torch",
                 "GEMMs alone ms", "GEMMs alone / torch"], rows))

    rows = []
    for hidden in (256, 512):
        x, y = torch.randn(args.batch, 35, 1), torch.randint(0, 10, (args.batch,))
        t = measure({"torch.nn.LSTM": torch_lstm, "compiled": ours(LSTM, "compiled"), "GEMMs alone": gemms_alone},
                    x, y, args.rounds, 4, train=True, hidden=hidden)
        ref = t["torch.nn.LSTM"]
        rows.append([str(hidden), f"{1e3 * ref:.2f}", f"{1e3 * t['compiled']:.2f}", f"**{t['compiled'] / ref:.2f}**",
                     f"{t['GEMMs alone'] / ref:.2f}"])
    print("\nTraining step at T = 35, larger hidden sizes:\n")
    print(table(["hidden", "torch.nn.LSTM ms", "compiled ms", "compiled / torch", "GEMMs alone / torch"], rows))

    x = torch.randn(args.inference_batch, 35, 1)
    t = measure({"torch.nn.LSTM": torch_lstm, "compiled": ours(LSTM, "compiled"), "eager": ours(LSTM, "eager")},
                x, None, args.rounds, 3, train=False)
    ref = t["torch.nn.LSTM"]
    print(f"\nInference, batch {args.inference_batch}, T = 35 (no_grad):\n")
    print(table(["torch.nn.LSTM ms", "compiled ms", "compiled / torch", "eager / torch"],
                [[f"{1e3 * ref:.2f}", f"{1e3 * t['compiled']:.2f}", f"**{t['compiled'] / ref:.2f}**",
                  f"{t['eager'] / ref:.2f}"]]))

    rows = []
    for T in (35, 100):
        x, y = torch.randn(args.batch, T, 1), torch.randint(0, 10, (args.batch,))
        t = measure({"torch.nn.RNN": torch_rnn, "compiled": ours(VanillaRNN, "compiled"),
                     "eager": ours(VanillaRNN, "eager")}, x, y, args.rounds, max(1, 300 // T), train=True)
        ref = t["torch.nn.RNN"]
        rows.append([str(T), f"{1e3 * ref:.2f}", f"{1e3 * t['compiled']:.2f}", f"**{t['compiled'] / ref:.2f}**",
                     f"{t['eager'] / ref:.2f}"])
    print("\nVanilla RNN training step (hidden 128):\n")
    print(table(["T", "torch.nn.RNN ms", "compiled ms", "compiled / torch", "eager / torch"], rows))

    peaks = {name: peak_memory_mb(name, 1000, threads) for name in ("torch.nn.LSTM", "compiled", "eager")}
    print("\nPeak memory of one training step at T = 1000 (rise of the resident high-water mark, fresh process):\n")
    ref = peaks["torch.nn.LSTM"]
    print(table(["implementation", "MB", "/ torch"],
                [[name, f"{mb:.0f}" if mb is not None else "n/a",
                  f"{mb / ref:.2f}" if mb is not None and ref else "—"] for name, mb in peaks.items()]))
    for T in args.long:
        long_sequences(T, threads)


if __name__ == "__main__":
    main()
