"""Every command-line option, declared once: on the dataclass field it sets.

An :class:`Option` holds what the parsers, the checks and the messages need: the flag, the help,
the choices and value type, the lowest allowed value, and the option's *effect* (a key of
:data:`EFFECTS`: whether and how it moves a number). ``compare``, the settings keys of the caches
and the argparse of ``eval``, ``bench``, ``sample`` and ``train`` all read it:

* :meth:`Option.field` makes the dataclass field (``Protocol``, ``RunOptions``, ``SamplingSettings``,
  ``TrainConfig``); :func:`options_of` lists a class's options, each with its field name and default;
* :func:`add_options` adds options to an argparse parser or group;
* :func:`check_fields` validates a dataclass instance against its options (one rule per option);
* :class:`AtLeast` refuses a value below an option's ``minimum`` while parsing; :class:`HelpFormatter`
  appends each option's default to its help.

How a message names a field (``--num-clips 2048`` on the command line, ``num_clips=2048`` for a Python
caller) is :func:`latte_bench.commands.flags.cli_name` and :func:`latte_bench.errors.api_name`.

Options that no dataclass holds but several commands take (``--threads``, ``--no-progress``,
``--device``) are the module constants :data:`THREADS`, :data:`PROGRESS` and :data:`DEVICE`.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import MISSING, dataclass
from typing import Any, Callable, Iterable

from latte_bench.errors import NAME_ONLY, UserError, check_int, literal

# What a difference in a setting does, one rule for every comparison of two evaluations (`latte-bench
# compare`, the leaderboards' notes) and for the settings keys: "meaning" makes two numbers
# incomparable; "draw" is another random draw of the same protocol (comparable, the difference is
# noise that the significance test measures); "digits" moves the last digits (summation order, BLAS,
# the device); "none" cannot move the number; "generated" is the generated side, which is what a
# comparison is about.
EFFECTS = {
    "meaning": "changes what the number means",
    "draw": "another random draw of the same protocol",
    "digits": "moves the last digits",
    "none": "no effect",
    "generated": "the generated side (what is compared)",
}


# choice lists that several commands and classes offer
SAMPLERS = ("ddpm", "ddim", "dpm++")
SAMPLE_PRECISIONS = ("fp32", "bf16", "fp16")
WEIGHTS = ("ema", "model")  # which weights of a training checkpoint
LABELS = ("random", "balanced")  # class labels of sampled videos
T2V_PROMPTS = ("classnames",)  # how a text-to-video checkpoint gets its prompts (eval --t2v-prompts)


@dataclass(frozen=True)
class Option:
    """One option. ``flag`` defaults to ``--field-name`` (``--no-field-name`` for a switch that is on by
    default); ``type`` to the default's type; ``keyed`` (part of the settings key) to "changes a number".
    ``real=False``: a protocol setting that does not act on the real statistics (the cache key leaves it out).
    ``flag=""``: a setting of the Python API only."""

    help: str
    effect: str = "none"
    flag: str | None = None
    choices: tuple | None = None
    type: Callable | None = None
    minimum: int | None = None
    metavar: str | None = None
    group: str | None = None
    keyed: bool | None = None
    real: bool = True
    name: str = ""
    default: Any = None

    def __post_init__(self):
        if self.effect not in EFFECTS:
            raise ValueError(f"effect {self.effect!r}: must be one of {', '.join(EFFECTS)}")

    def field(self, default: Any = MISSING, *, default_factory: Any = MISSING, **kwargs):
        """The dataclass field that holds this option (``kwargs``: other ``dataclasses.field`` arguments)."""
        return dataclasses.field(default=default, default_factory=default_factory, metadata={"option": self}, **kwargs)

    @property
    def switch(self) -> bool:
        return isinstance(self.default, bool) and self.type is None

    @property
    def cli_flag(self) -> str:
        if self.flag is not None:
            return self.flag
        stem = self.name.replace("_", "-")
        return f"--no-{stem}" if self.switch and self.default else f"--{stem}"

    @property
    def changes_number(self) -> bool:
        return self.effect != "none"

    @property
    def in_key(self) -> bool:
        return self.changes_number if self.keyed is None else self.keyed


def options_of(cls) -> tuple[Option, ...]:
    """The options of dataclass ``cls``, in field order, each with its field ``name`` and ``default``."""
    out = []
    for f in dataclasses.fields(cls):
        opt = f.metadata.get("option")
        if opt is not None:
            default = f.default if f.default is not MISSING else (
                f.default_factory() if f.default_factory is not MISSING else None)
            out.append(dataclasses.replace(opt, name=f.name, default=default))
    return tuple(out)


def key_fields(cls) -> tuple[str, ...]:
    """Names of the fields of ``cls`` that belong in a settings key (they can move a number)."""
    return tuple(o.name for o in options_of(cls) if o.in_key)


def effects_of(*classes) -> dict[str, str]:
    """``{field: effect}`` over the options of ``classes``."""
    return {o.name: o.effect for cls in classes for o in options_of(cls)}


# ----------------------------------------------------------------------------- argparse


def add_options(target, options: Iterable[Option], *, defaults: bool = True, default_text: Callable | None = None,
                overrides: dict | None = None) -> None:
    """Add ``options`` as arguments (``dest``: the field name) to ``target``: a parser or group, or a
    callable ``group(option)`` returning one.

    ``defaults=False`` gives every argument the default None, so that a caller can tell which flags were
    set (``bench`` lays them over a plan, ``train`` over a preset); the help still names the default,
    ``default_text(name)`` when given. ``overrides``: ``{name: {"default": ..., "help": ...}}`` for a
    command whose default differs (named in its help).
    """
    for declared in options:
        if declared.flag == "":
            continue  # a setting of the Python API only
        opt = dataclasses.replace(declared, **(overrides or {}).get(declared.name, {}))
        group = target(opt) if callable(target) and not hasattr(target, "add_argument") else target
        kwargs: dict[str, Any] = {"dest": opt.name, "help": opt.help}
        if declared.switch:
            kwargs["action"] = "store_false" if declared.default else "store_true"
        else:
            kwargs["type"] = declared.type or (type(declared.default) if declared.default is not None else str)
            if opt.choices:
                kwargs["choices"] = opt.choices
            if opt.metavar:
                kwargs["metavar"] = opt.metavar
            if declared.minimum is not None:  # refused while parsing, by the check the settings use
                kwargs.update(action=AtLeast, minimum=declared.minimum)
        if defaults:
            kwargs["default"] = opt.default
        else:
            shown = default_text(opt.name) if default_text else opt.default
            if "default" not in opt.help and (default_text or not (declared.switch or shown is None)):
                shown = {"True": "on", "False": "off"}.get(str(shown), shown)
                kwargs["help"] = f"{opt.help} (default: {shown})"
            kwargs["default"] = None
        group.add_argument(opt.cli_flag, **kwargs)


def settings_from(args: argparse.Namespace, options: Iterable[Option]) -> dict:
    """``{name: value}`` of ``options`` in the parsed ``args`` (None when a parser left one out)."""
    return {o.name: getattr(args, o.name, None) for o in options}


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


# ----------------------------------------------------------------------------- checks and messages


def check_fields(obj) -> None:
    """Refuse (:class:`UserError` naming the option) a field of dataclass ``obj`` that its option forbids:
    below ``minimum``, not an integer where one is needed, or not one of ``choices``. None passes
    where the option's default is None (the default rule applies)."""
    for opt in options_of(type(obj)):
        check_value(opt, getattr(obj, opt.name))


def check_value(opt: Option, value) -> None:
    if value is None and opt.default is None:
        return
    if opt.minimum is not None:
        check_int(opt.name, value, opt.minimum)
    if opt.choices is not None and value not in opt.choices:
        raise UserError(f"{{{opt.name}}} must be one of {', '.join(map(str, opt.choices))}, got {literal(repr(value))}",
                        **{opt.name: NAME_ONLY})


# ----------------------------------------------------------------------------- shared by several commands


THREADS = Option(
    name="threads", default=None, type=int, minimum=1, effect="digits",
    help="torch CPU threads (default: torch's current count, i.e. $OMP_NUM_THREADS when set, else the "
         "physical cores; recorded: CPU numbers are bitwise reproducible at equal thread counts; 1 is "
         "fastest on a busy machine)")
PROGRESS = Option(name="progress", default=True, help="no progress bars")
DEVICE = Option(name="device", default=None, effect="digits",
                help="cpu, cuda, cuda:N or auto (default: auto, CUDA when available)")


def yes_no(text: str) -> bool:
    """``yes``/``true``/``1`` or ``no``/``false``/``0`` (an argparse type)."""
    if text.lower() in ("yes", "true", "1"):
        return True
    if text.lower() in ("no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")


def resolve_threads(n: int | None) -> int:
    """The CPU thread count for ``--threads n``: ``n`` (>= 1, else a :class:`UserError`), or torch's current count."""
    import torch

    check_value(THREADS, n)
    return int(n) if n is not None else torch.get_num_threads()
