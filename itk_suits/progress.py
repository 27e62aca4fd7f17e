"""Progress bars that behave in a terminal and in a log file.

On a terminal a bar redraws at most four times per second. When the output
is a file or a pipe (a CI log, a batch job), every redraw would be a line of
its own, so the bar is replaced by a line at most every
:data:`LOG_INTERVAL` seconds and one at the end; callers with natural
milestones (a registration's scales) print those instead.
"""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["LOG_INTERVAL", "is_terminal", "progress_bar"]

#: Seconds between two progress lines when the output is not a terminal.
LOG_INTERVAL = 30.0
#: Seconds between two redraws of a bar on a terminal.
_TERMINAL_INTERVAL = 0.25


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default ``sys.stderr``) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(total: int | None, desc: str, unit: str = "it", *, disable: bool = False, **options):
    """A tqdm bar on stderr, rate-limited for terminals and for log files.

    Parameters
    ----------
    total : int or None
        Expected number of steps.
    desc, unit : str
        Label and unit of the bar.
    disable : bool
        Return a bar that shows nothing.
    **options
        Further tqdm arguments (e.g. ``initial``).
    """
    from tqdm.auto import tqdm

    interval = _TERMINAL_INTERVAL if is_terminal() else LOG_INTERVAL
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, mininterval=interval,
                maxinterval=max(interval, 10.0), dynamic_ncols=True, **options)
