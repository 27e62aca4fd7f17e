"""Helpers shared by the benchmark scripts: plain-text tables, versions, thread limits."""

from __future__ import annotations

import math

import SimpleITK as sitk
import torch

from itk_suits.evaluation.report import environment

__all__ = ["number", "table", "versions", "set_threads"]


def number(value, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals, ``-`` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def table(header: list[str], lines: list[list[str]]) -> str:
    """A left-aligned plain-text table with a rule under the header."""
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def render(row):
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths))

    return "\n".join([render(header), render(["-" * w for w in widths]), *map(render, lines)])


def versions() -> dict:
    """Versions of Python and of every package the benchmarks use."""
    return environment()["versions"]


def set_threads(threads: int) -> None:
    """Limit torch, SimpleITK and ITK to ``threads`` (registrations also get it per call).

    ITK is left out where it is not installed: SimpleITK inputs never use it
    (``bench_gpu.py`` runs with torch, SimpleITK and numpy alone).
    """
    torch.set_num_threads(threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    try:
        import itk
    except ImportError:
        return
    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(threads)
