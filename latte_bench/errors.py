"""The one exception type that reaches the user as a one-line message.

Raise :class:`UserError` for anything the user can fix (a missing folder, a corrupt
video, a missing weight file). The CLI prints ``latte-bench: error: <message>`` and
exits with status 2, without a traceback. The message should name the file and the fix.
"""


class UserError(Exception):
    """A problem with the user's input or environment, reported in one line (exit 2)."""

    exit_code = 2
