"""Why GAN training stays on one device: a step's time against the cost of sharing its gradients.

Data parallelism splits each batch over W workers; every step they must then average the
gradients of both networks (an all-reduce of every G and D parameter). This prints, side by side:

* the time of one training step of the seed's networks (D step + G step, batch 64 by default)
  with 1 and 2 threads in this process;
* the time of one all-reduce of gradients of that size between 2 local processes (gloo over
  loopback, the cheapest link there is), i.e. the communication a 2-worker data-parallel step adds.

    python benchmarks/gan_data_parallel.py --batch 64
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lstmgan.gan import Discriminator, Generator
from lstmgan.gan.train import adam, discriminator_loss, frozen, generator_loss, optimize


def step_time(batch: int, threads: int, rounds: int = 7, steps: int = 30) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    G, D = Generator(100), Discriminator()
    opt_G, opt_D = adam(G.parameters(), 2e-4, (0.5, 0.999)), adam(D.parameters(), 2e-4, (0.5, 0.999))
    real = torch.rand(batch, 784) * 2 - 1

    def step():
        fake = G(torch.randn(batch, 100))
        optimize(opt_D, discriminator_loss(D, real, fake.detach())[0])
        with frozen(D):
            optimize(opt_G, generator_loss(D, fake))
    for _ in range(5):
        step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def _allreduce_worker(rank: int, port: int, numel: int, result):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    grads = torch.randn(numel)
    for _ in range(5):
        dist.all_reduce(grads)
    times = []
    for _ in range(30):
        start = time.perf_counter()
        dist.all_reduce(grads)
        times.append(time.perf_counter() - start)
    if rank == 0:
        result.value = statistics.median(times)
    dist.destroy_process_group()


def allreduce_time(numel: int) -> float:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = mp.get_context("spawn").Value("d", 0.0)
    mp.spawn(_allreduce_worker, args=(port, numel, result), nprocs=2, join=True)
    return result.value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    numel = sum(p.numel() for net in (Generator(100), Discriminator()) for p in net.parameters())
    one, two = step_time(args.batch, 1), step_time(args.batch, 2)
    half = step_time(args.batch // 2, 1)
    reduce = allreduce_time(numel)
    print(f"torch {torch.__version__}; G + D: {numel / 1e6:.2f} M parameters ({4 * numel / 1e6:.1f} MB of gradients)\n")
    print("| what | ms per step |")
    print("|---|---|")
    print(f"| one process, batch {args.batch}, 1 thread | {1e3 * one:.2f} |")
    print(f"| one process, batch {args.batch}, 2 threads | {1e3 * two:.2f} |")
    print(f"| 2 data-parallel workers: compute of half a batch ({args.batch // 2}), 1 thread each | {1e3 * half:.2f} |")
    print(f"| 2 data-parallel workers: all-reduce of the gradients (gloo, loopback) | {1e3 * reduce:.2f} |")
    print(f"| 2 data-parallel workers: step = compute + all-reduce | {1e3 * (half + reduce):.2f} |")


if __name__ == "__main__":
    main()
