"""Helpers shared by the benchmark scripts: plain-text tables, versions, thread limits."""

from __future__ import annotations

import math

import SimpleITK as sitk
import torch

from itk_suits.evaluation.report import environment

__all__ = ["number", "table", "versions", "set_threads", "means"]


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


def means(results: list[dict]) -> dict:
    """Per method of ``result["methods"]``, the mean over the pairs of every number (a None, NaN or missing
    value is left out; a key without any number is None); a method that failed on a pair gets the count of its
    failures instead (``{"failed_pairs": n}``)."""
    summary = {}
    for name in (results[0]["methods"] if results else {}):
        rows = [result["methods"].get(name, {"error": "missing"}) for result in results]
        failed = sum("error" in row for row in rows)
        if failed:
            summary[name] = {"failed_pairs": failed}
            continue
        keys = dict.fromkeys(key for row in rows for key, value in row.items()
                             if isinstance(value, (int, float)) and not isinstance(value, bool))
        summary[name] = {}
        for key in keys:
            values = [row[key] for row in rows
                      if isinstance(row.get(key), (int, float)) and not math.isnan(row[key])]
            summary[name][key] = sum(values) / len(values) if values else None
    return summary
