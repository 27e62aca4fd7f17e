"""Progress of one registration: a bar on a terminal, a line per scale in a log."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from ..core import IterationInfo
from ..progress import is_terminal, progress_bar
from .method import IterationEvent, ScaleEvent, SuitsRegistrationMethod

__all__ = ["registration_progress"]


@contextlib.contextmanager
def registration_progress(method: SuitsRegistrationMethod, enabled: bool) -> Iterator[None]:
    """Show the progress of ``method.Update()`` run inside the block.

    On a terminal: a bar over all iterations of all scales, redrawn at most a
    few times per second. Otherwise (a log file, CI): one line per scale on
    stderr, with its control spacing, iterations run and seconds.
    """
    if not enabled:
        yield
        return
    parameters = method.GetParameters().validated()
    iterations, spacings = parameters.iterations, parameters.grid_spacings
    unit = "mm" if parameters.grid_unit == "mm" else "voxels"
    if not is_terminal():
        def report(entry: dict) -> None:
            print(f"SUITS scale {entry['scale'] + 1}/{len(iterations)}: grid spacing {spacings[entry['scale']]:g} "
                  f"{unit}, {entry['iterations']} iterations, {entry['seconds']:.2f} s", file=sys.stderr)

        tag = method.AddObserver(ScaleEvent, report)
        try:
            yield
        finally:
            method.RemoveObserver(tag)
        return

    bar = progress_bar(sum(iterations), "SUITS", "it")
    done = {"count": 0}

    def advance(info: IterationInfo) -> None:
        count = sum(iterations[: info.scale]) + info.iteration
        bar.update(count - done["count"])
        done["count"] = count
        bar.set_postfix(scale=f"{info.scale + 1}/{info.scales}", spacing=f"{spacings[info.scale]:g} {unit}",
                        refresh=False)

    tag = method.AddObserver(IterationEvent, advance)
    try:
        yield
        bar.update(sum(iterations) - done["count"])  # scales that stopped early
    finally:
        bar.close()
        method.RemoveObserver(tag)
