"""latte_bench.models."""
