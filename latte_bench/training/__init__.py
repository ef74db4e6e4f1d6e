"""latte_bench.training."""
