"""How the command line names a setting: the flag declared for each settings field.

A :class:`latte_bench.errors.UserError` names its settings as ``{field}`` placeholders;
``e.render(cli_name)`` writes them as the flags a user typed (``--num-clips 2048``). The lookup reads
every class that declares options (:mod:`latte_bench.options`), which is why it sits here, above
metrics and training, and not in ``options.py`` beneath them.
"""

from __future__ import annotations

import functools

from latte_bench.errors import NAME_ONLY, api_name
from latte_bench.metrics.protocol import Protocol, RunOptions, SamplingSettings, Settings
from latte_bench.options import DEVICE, PROGRESS, THREADS, Option, options_of
from latte_bench.training.presets import TrainConfig


@functools.cache
def _declared() -> dict[str, Option]:
    found: dict[str, Option] = {}
    for opt in (*[o for cls in (Protocol, RunOptions, Settings, SamplingSettings, TrainConfig) for o in options_of(cls)],
                THREADS, PROGRESS, DEVICE):
        found.setdefault(opt.name, opt)  # one field name, one flag: the first class's (eval's) wins
    return found


def option_named(name: str) -> Option | None:
    """The option declared for field ``name`` in any of the classes that hold options, or None."""
    return _declared().get(name)


def cli_name(name: str, value=NAME_ONLY) -> str:
    """The flag of field ``name`` (``--num-clips``), with ``value`` as it is typed (``--num-clips 2048``;
    a switch alone); a name without a flag is shown as for Python."""
    opt = option_named(name)
    if opt is None or opt.flag == "":
        return api_name(name, value)
    if value is NAME_ONLY or (opt.switch and value == (not opt.default)):
        return opt.cli_flag
    return f"{opt.cli_flag} {value}"
