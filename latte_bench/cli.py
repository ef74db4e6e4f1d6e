"""The ``latte-bench`` command line: one entry point, one subcommand per job.

Each subcommand lives beside the code it drives and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed namespace; returns an
exit code or None). This file only assembles them and turns :class:`UserError` into a
one-line message with exit status 2, naming each setting by its flag (``--num-clips 2048``), also when it
is raised while parsing (:class:`AtLeast`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from latte_bench import __version__
from latte_bench.errors import UserError, check_int

# module that defines ``register(subparsers)`` for each group of subcommands, in help order
COMMAND_MODULES = (
    "latte_bench.metrics.commands",  # eval, data, weights
    "latte_bench.training.commands",  # train, encode, sample
    "latte_bench.reports.commands",  # report, analyze, demo
    "latte_bench.reports.bench",  # bench
    "latte_bench.metrics.compare_command",  # compare
)


class HelpFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to each option's help; "off" for switches; nothing when the help says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS) or action.required:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


class AtLeast(argparse.Action):
    """``add_argument("--steps", type=int, action=AtLeast, minimum=1)``: a value below ``minimum`` is refused while
    parsing, in one line naming the flag (:func:`latte_bench.errors.check_int`, the check the settings use too).
    :func:`latte_bench.options.add_options` gives it to every option declared with a ``minimum``."""

    def __init__(self, option_strings, dest, minimum: int = 1, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.minimum = minimum

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, check_int(self.dest, values, self.minimum, flag=option_string))


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
        from latte_bench.options import cli_name

        print(f"latte-bench: error: {e.render(cli_name)}", file=sys.stderr)  # settings named by their flags
        return UserError.exit_code
    except KeyboardInterrupt:
        print("latte-bench: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
