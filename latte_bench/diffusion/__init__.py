"""latte_bench.diffusion."""
