"""``latte-bench weights list`` and ``weights fetch``: the detector weight files of :mod:`latte_bench.metrics.weights`."""

from __future__ import annotations

from latte_bench.errors import UserError
from latte_bench.metrics import weights  # no torch: its names fill the help


def cmd_weights_list(args) -> int:
    """Print a table: name, status, path, sha256 (never downloads)."""
    rows = [weights.status(name) for name in weights.SPECS]
    headers = ("name", "status", "path", "sha256")
    table = [headers] + [tuple(str(r[h] if r[h] is not None else "-") for h in headers) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def cmd_weights_fetch(args) -> int:
    """Fetch the named weights into the cache (or install ``--from FILE``); print their paths."""
    names = args.names or ["all"]
    if getattr(args, "source", None):
        if len(names) != 1 or names[0] == "all":
            raise UserError("--from FILE needs exactly one weights name, e.g. `weights fetch i3d_torchscript --from F`")
        paths = [weights.install(names[0], args.source)]
    else:
        paths = weights.fetch(names)
    for path in paths:
        print(path)
    return 0


def register(subparsers) -> None:
    """Add ``weights list`` and ``weights fetch [NAME ...|all] [--from FILE]``."""
    parser = subparsers.add_parser("weights", help="detector weight files: list, fetch (downloads and checks the sha256)")
    actions = parser.add_subparsers(dest="weights_action", metavar="ACTION")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    p_list = actions.add_parser("list", help="show each weight file: status, path, sha256")
    p_list.set_defaults(func=cmd_weights_list)
    p_fetch = actions.add_parser(
        "fetch",
        help="download and verify weights into the cache",
        description=f"Names: {', '.join(weights.SPECS)}, or 'all' ({', '.join(weights.FETCH_ALL)}). Cache: $LATTE_BENCH_CACHE "
        "or ~/.cache/latte_bench.",
    )
    p_fetch.add_argument("names", nargs="*", metavar="NAME", help="weights to fetch (default: all)")
    p_fetch.add_argument("--from", dest="source", metavar="FILE", help="install this local file instead of downloading")
    p_fetch.set_defaults(func=cmd_weights_fetch)
