"""latte_bench.metrics."""
