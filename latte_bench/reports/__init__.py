"""latte_bench.reports."""
