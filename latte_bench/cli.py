"""The ``latte-bench`` command line: one entry point, one subcommand per job.

Each group of subcommands is a module of :mod:`latte_bench.commands` with ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed namespace; returns an
exit code or None). This file only assembles them and turns :class:`UserError` into a
one-line message with exit status 2, naming each setting by its flag (``--num-clips 2048``), also when it
is raised while parsing (:class:`latte_bench.options.AtLeast`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from latte_bench import __version__
from latte_bench.commands.flags import cli_name
from latte_bench.errors import UserError

# module that defines ``register(subparsers)`` for each group of subcommands, in help order
COMMAND_MODULES = (
    "latte_bench.commands.eval",  # eval, data
    "latte_bench.commands.weights",  # weights
    "latte_bench.commands.train",  # train, encode, sample, export-official
    "latte_bench.commands.report",  # report, analyze, demo
    "latte_bench.commands.bench",  # bench
    "latte_bench.commands.compare",  # compare
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latte-bench",
        description="Train, sample and evaluate Latte video diffusion transformers with the published protocols.",
    )
    parser.add_argument("--version", action="version", version=f"latte-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 2
        code = args.func(args)
    except UserError as e:
        print(f"latte-bench: error: {e.render(cli_name)}", file=sys.stderr)  # settings named by their flags
        return UserError.exit_code
    except KeyboardInterrupt:
        print("latte-bench: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
