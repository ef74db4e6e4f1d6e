"""The subcommands of ``latte-bench``, one module per group, each with ``register(subparsers)``.

This is the top layer: a command module reads the library (metrics, training, reports, data,
models) and nothing in the library reads a command module. :mod:`latte_bench.cli` assembles them.
"""
