"""Per-step cost of the samplers' own arithmetic (everything but the network) on CPU.

Two models per sampler, at the Latte-XL/2 256-px latent shape (B, 16, 4, 32, 32):

* ``free``: returns a precomputed tensor, so the time is the sampler's overhead alone;
* ``tiny``: a Latte-S-sized-down network (hidden 64, depth 4), to put that overhead next to a
  (very small) model call.

Usage: ``python benchmarks/bench_samplers.py [--batch 2] [--steps 20] [--model-steps 3] [--threads 2]``.
Prints a markdown table (ms per step).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from latte_bench.diffusion import sample


def time_per_step(model, shape, sampler: str, steps: int, repeats: int = 3) -> float:
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    sample(model, shape, sampler=sampler, steps=2, noise=noise, progress=False)  # warm-up (imports, allocator)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        sample(model, shape, sampler=sampler, steps=steps, noise=noise, progress=False,
               generator=torch.Generator().manual_seed(1))
        best = min(best, (time.perf_counter() - start) / steps)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model-steps", type=int, default=3, help="steps for the runs with the tiny model")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = (args.batch, 16, 4, 32, 32)

    output = torch.randn(args.batch, 16, 8, 32, 32) * 0.1

    def free(x, t, **kwargs):
        return output

    from latte_bench.models import from_official

    tiny = from_official(dict(input_size=32, patch_size=2, in_channels=4, hidden_size=64, depth=4, num_heads=4,
                              num_frames=16, extras=1, learn_sigma=True))

    def tiny_model(x, t, **kwargs):
        with torch.no_grad():
            return tiny(x, t)

    print(f"torch {torch.__version__}, threads {args.threads}, shape {shape}, steps {args.steps}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| sampler | overhead ms/step (free model) | ms/step with tiny Latte (D=64, depth 4) | tiny model call alone ms |")
    print("|---|---|---|---|")
    x = torch.randn(shape)
    t = torch.full((args.batch,), 500)
    start = time.perf_counter()
    for _ in range(2):
        tiny_model(x, t)
    model_ms = (time.perf_counter() - start) / 2 * 1000
    for sampler in ("ddpm", "ddim", "dpm++"):
        overhead = time_per_step(free, shape, sampler, args.steps)
        with_model = time_per_step(tiny_model, shape, sampler, args.model_steps, repeats=1)
        print(f"| {sampler} | {overhead:.2f} | {with_model:.1f} | {model_ms:.1f} |")


if __name__ == "__main__":
    main()
