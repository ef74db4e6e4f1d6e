"""The one exception type that reaches the user as a one-line message.

Raise :class:`UserError` for anything the user can fix (a missing folder, a corrupt
video, a missing weight file). The CLI prints ``latte-bench: error: <message>`` and
exits with status 2, without a traceback. The message should name the file and the fix.
:func:`check_int` is the one check of a whole-number setting, used by the command-line parsers
(``latte_bench.cli.AtLeast``) and by the settings objects alike. :func:`third_party_quiet` keeps
what libraries print while loading a file off the terminal, so that the one line is all there is.
"""

import contextlib


class UserError(Exception):
    """A problem with the user's input or environment, reported in one line (exit 2)."""

    exit_code = 2


def check_int(flag: str, value, minimum: int) -> int:
    """Return ``value`` if it is an integer >= ``minimum``; else a :class:`UserError` naming ``flag`` and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{flag} must be an integer >= {minimum}, got {value!r}")
    return value


@contextlib.contextmanager
def third_party_quiet():
    """Silence every log record and Python warning inside the block (diffusers' eight lines around a bad VAE
    file, torch's pickle-protocol warning on a raw pickle); a failure reaches the user as one UserError line.

    Use around a third-party load only: ``logging.disable`` and the warning filters are process-wide
    while the block runs. Both are restored on exit.
    """
    import logging
    import warnings

    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(before)
