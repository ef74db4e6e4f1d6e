"""latte_bench.data."""
