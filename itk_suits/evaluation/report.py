"""Comparison reports: ``results.json``, ``report.md``, ``report.html`` and one figure per pair.

The input is the dict built by :func:`itk_suits.evaluation.compare` and
:func:`~itk_suits.evaluation.evaluate` (every number, the command line and
the package versions); this module turns it into files and text. The
Markdown and HTML reports are rendered from one list of blocks, so they show
the same tables; the HTML file embeds the figures by relative path and needs
nothing else. Nothing is overwritten unless asked.

Layout of an output directory::

    results.json  report.md  report.html
    figures/<pair>.png                       one column per method
    <pair>/<method>/transform.h5, warped.nii.gz, warped_labels.nii.gz   (save_outputs only)
"""

from __future__ import annotations

import html
import importlib.metadata
import json
import math
import os
import pathlib
import platform
import re
import shlex
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from itk_suits._version import __version__
from itk_suits.errors import ParameterError

__all__ = [
    "MethodImages",
    "safe_name",
    "environment",
    "json_ready",
    "planned_files",
    "check_writable",
    "save_pair",
    "write_report",
    "format_table",
]

REPORT_FILES = ("results.json", "report.md", "report.html")
FIGURE_DIRECTORY = "figures"
OUTPUT_FILES = ("transform.h5", "warped.nii.gz", "warped_labels.nii.gz")

#: Distributions whose versions every report records (``None``: not installed).
PACKAGES = ("itk-suits", "torch", "itk", "itk-elastix", "SimpleITK", "numpy", "onnxruntime", "matplotlib")

_MISSING = "–"
_INPUT_ROLES = ("fixed", "moving", "fixed_labels", "moving_labels", "fixed_mask")


@dataclass(frozen=True)
class MethodImages:
    """One column of a pair's figure: a method's result on the fixed grid.

    Attributes
    ----------
    transform : SimpleITK.Transform or None
        Fixed -> moving transform (None: identity, before registration).
    warped : SimpleITK.Image
        Moving image resampled onto the fixed grid through ``transform``.
    warped_labels : SimpleITK.Image or None
        Moving labels resampled onto the fixed grid (nearest neighbour).
    displacement : numpy.ndarray or None
        Motion beyond the initial alignment in voxels of the fixed grid,
        shape ``(ndim, *fixed array shape)``, components (x, y[, z]); None
        before registration.
    """

    transform: Optional[sitk.Transform]
    warped: sitk.Image
    warped_labels: Optional[sitk.Image] = None
    displacement: Optional[np.ndarray] = None


# --- environment and JSON ------------------------------------------------------------


def _version(distribution: str) -> Optional[str]:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    """The exact command, package versions and machine of this process.

    Returns
    -------
    dict
        ``command`` (``sys.argv`` joined as a shell line), ``argv``,
        ``versions`` (python and :data:`PACKAGES`; None for packages that are
        not installed), ``platform``, ``cpu_count``.
    """
    versions = {"python": platform.python_version()}
    versions.update({name: _version(name) for name in PACKAGES})
    versions["itk-suits"] = __version__
    return {
        "command": shlex.join(sys.argv),
        "argv": list(sys.argv),
        "versions": versions,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars and tuples made plain, NaN and infinities made None.

    Strict JSON has no NaN or Infinity; an undefined score (a label missing
    from both images, no reference time) is written as null.
    """
    if isinstance(value, Mapping):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# --- files ---------------------------------------------------------------------------


def safe_name(name: str) -> str:
    """``name`` as a file name: characters other than letters, digits, '.', '_' and '-' become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).strip(".") or "_"


def planned_files(output_dir, pair_names: Sequence[str],
                  saved_methods: Sequence[str] = ()) -> list[pathlib.Path]:
    """Every file a comparison will write into ``output_dir``.

    Parameters
    ----------
    output_dir : str or os.PathLike
    pair_names : sequence of str
        File-safe pair names.
    saved_methods : sequence of str
        Methods whose outputs are saved (empty without ``save_outputs``).

    Returns
    -------
    list of pathlib.Path
    """
    root = pathlib.Path(output_dir)
    files = [root / name for name in REPORT_FILES]
    for name in pair_names:
        files.append(root / FIGURE_DIRECTORY / f"{name}.png")
        files += [root / name / safe_name(method) / output
                  for method in saved_methods for output in OUTPUT_FILES]
    return files


def check_writable(paths: Iterable[pathlib.Path], overwrite: bool) -> None:
    """Refuse, before any work, to replace existing files unless ``overwrite``.

    Raises
    ------
    FileExistsError
        Naming the existing files, or an output directory that is a file.
    """
    paths = list(paths)
    for path in paths:
        for parent in path.parents:
            if parent.exists() and not parent.is_dir():
                raise FileExistsError(f"output {parent} is a file, not a directory; choose another output_dir")
    existing = [str(path) for path in paths if path.exists()]
    if existing and not overwrite:
        shown = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise FileExistsError(f"not overwriting {shown}; pass overwrite=True (CLI: --overwrite)")


def _columns(record: Mapping, panels: Mapping[str, MethodImages]) -> dict:
    """Figure columns: the initial alignment, then every method that ran, titled with its mean Dice."""
    columns = {}
    for method, images in panels.items():
        scores = record["initial"] if method == "initial" else record["methods"][method]
        title = "before (initial)" if method == "initial" else method
        if scores.get("mean_dice") is not None:
            title += f"\nDice {scores['mean_dice']:.3f}"
        array = None if images.warped_labels is None else sitk.GetArrayFromImage(images.warped_labels)
        columns[title] = {"warped": sitk.GetArrayFromImage(images.warped), "labels": array,
                          "displacement": images.displacement}
    return columns


def save_pair(
    output_dir,
    name: str,
    record: Mapping,
    panels: Mapping[str, MethodImages],
    *,
    fixed: sitk.Image,
    fixed_labels: Optional[sitk.Image] = None,
    save_outputs: bool = False,
    overwrite: bool = False,
) -> dict:
    """Write one pair's figure and, with ``save_outputs``, each method's transform and warped images.

    Parameters
    ----------
    output_dir : str or os.PathLike
    name : str
        File-safe pair name.
    record : mapping
        The pair's record (for the Dice in the column titles).
    panels : mapping of str to MethodImages
        ``"initial"`` and every method that ran, in column order.
    fixed, fixed_labels : SimpleITK.Image
        The fixed image and its labels (None without labels).
    save_outputs : bool
        Also write ``<name>/<method>/transform.h5``, ``warped.nii.gz`` and
        ``warped_labels.nii.gz``.
    overwrite : bool
        Replace existing files.

    Returns
    -------
    dict
        ``figure``: the figure's path relative to ``output_dir``; per saved
        method, its file names relative to ``output_dir``.
    """
    from itk_suits.visualization import save_comparison_figure

    root = pathlib.Path(output_dir)
    figure = pathlib.Path(FIGURE_DIRECTORY) / f"{name}.png"
    save_comparison_figure(
        root / figure,
        sitk.GetArrayFromImage(fixed),
        _columns(record, panels),
        fixed_labels=None if fixed_labels is None else sitk.GetArrayFromImage(fixed_labels),
        spacing=fixed.GetSpacing(),
        title=record["name"] + (" (middle slice)" if fixed.GetDimension() == 3 else ""),
        overwrite=overwrite,
    )
    files: dict = {"figure": figure.as_posix()}
    if not save_outputs:
        return files
    for method, images in panels.items():
        if method == "initial":
            continue
        directory = root / name / safe_name(method)
        directory.mkdir(parents=True, exist_ok=True)
        sitk.WriteTransform(images.transform, str(directory / "transform.h5"))
        sitk.WriteImage(images.warped, str(directory / "warped.nii.gz"))
        saved = {"transform": "transform.h5", "warped": "warped.nii.gz"}
        if images.warped_labels is not None:
            sitk.WriteImage(images.warped_labels, str(directory / "warped_labels.nii.gz"))
            saved["warped_labels"] = "warped_labels.nii.gz"
        files[method] = {key: (directory / value).relative_to(root).as_posix() for key, value in saved.items()}
    return files


# --- tables --------------------------------------------------------------------------


def _number(value: Optional[float], digits: int) -> str:
    return _MISSING if value is None else f"{value:.{digits}f}"


def _ratio(value: Optional[float]) -> str:
    return _MISSING if value is None else (f"{value:.3f}" if value < 0.1 else f"{value:.2f}")


def _method_table(scores: Mapping[str, Mapping], initial: Mapping, reference: Optional[str],
                  summary: bool) -> tuple[list[str], list[list[str]]]:
    """One row per method (and the initial alignment): means, regularity, time."""
    headers = ["method", "pairs" if summary else "status", "Dice", "HD95 (mm)", "folding (%)", "SDlogJ",
               "time (s)"]
    if reference:
        headers.append(f"time / {reference}")
    rows = [["initial", "", _number(initial.get("mean_dice"), 3), _number(initial.get("mean_hd95_mm"), 2)]
            + [""] * (len(headers) - 4)]
    for method, entry in scores.items():
        done = entry["pairs"] > 0 if summary else entry["status"] == "ok"
        if not done:
            rows.append([method, "0" if summary else entry["status"]] + [_MISSING] * (len(headers) - 2))
            continue
        row = [method, str(entry["pairs"]) if summary else "ok",
               _number(entry.get("mean_dice"), 3), _number(entry.get("mean_hd95_mm"), 2),
               _number(entry.get("folding_percent"), 3), _number(entry.get("sdlogj"), 3),
               _number(entry.get("seconds"), 2)]
        if reference:
            row.append(_ratio(entry.get("time_ratio")))
        rows.append(row)
    return headers, rows


def _label_table(initial_rows: Sequence[Mapping], method_rows: Mapping[str, Sequence[Mapping]], key: str,
                 digits: int) -> tuple[list[str], list[list[str]]]:
    """One row per label, one column per method (after the initial alignment) for ``key``."""
    headers = ["label", "name", "initial", *method_rows]
    by_method = {method: {row["label"]: row for row in rows} for method, rows in method_rows.items()}
    rows = []
    for row in initial_rows:
        label = row["label"]
        values = [_number(row.get(key), digits)]
        values += [_number(by_method[m].get(label, {}).get(key), digits) for m in method_rows]
        rows.append([str(label), row.get("name") or "", *values])
    return headers, rows


def _reasons(scores: Mapping[str, Mapping]) -> list[str]:
    """One line per method that did not run, and per method that lost labels."""
    lines = []
    for method, entry in scores.items():
        if entry.get("status") in ("skipped", "failed"):
            lines.append(f"{method} {entry['status']}: {entry['reason']}")
        elif entry.get("labels_missing"):
            lines.append(f"{method}: {entry['labels_missing']} label(s) in only one of the fixed and warped "
                         "label maps; their HD95 is undefined and left out of the mean")
    return lines


def _grouped(pairs: Sequence[Mapping]) -> list[str]:
    """Each distinct note of :func:`_reasons` once, with the pairs it applies to."""
    where: dict[str, list[str]] = {}
    for pair in pairs:
        for line in _reasons(pair["methods"]):
            where.setdefault(line, []).append(pair["name"])
    notes = []
    for line, names in where.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        notes.append(f"{line} ({len(names)} pair{'s' if len(names) > 1 else ''}: {shown})")
    return notes


def format_table(results: Mapping) -> str:
    """Plain-text table of the methods (one pair: its scores; several: the means), for a terminal.

    Parameters
    ----------
    results : mapping
        As returned by :func:`~itk_suits.evaluation.compare`.

    Returns
    -------
    str
        Aligned columns, then one line per skipped or failed method.
    """
    reference = results["settings"].get("time_reference")
    if len(results["pairs"]) == 1:
        pair = results["pairs"][0]
        headers, rows = _method_table(pair["methods"], pair["initial"], reference, summary=False)
        notes = _reasons(pair["methods"])
    else:
        summary = results["summary"]
        headers, rows = _method_table(summary["methods"], summary["initial"], reference, summary=True)
        notes = _grouped(results["pairs"])
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    lines = ["  ".join(cell.ljust(width) if index == 0 else cell.rjust(width)
                       for index, (cell, width) in enumerate(zip(line, widths))).rstrip()
             for line in [headers, *rows]]
    return "\n".join(lines[:1] + ["-" * len(lines[0])] + lines[1:] + notes)


# --- the report as blocks ------------------------------------------------------------


def _pair_blocks(pair: Mapping, reference: Optional[str]) -> list[tuple]:
    blocks: list[tuple] = [("h2", f"Pair {pair['name']}")]
    geometry = pair["fixed_geometry"]
    files = [f"{role.replace('_', ' ')} {pair[role]}" for role in _INPUT_ROLES
             if pair.get(role) and not pair[role].startswith("in-memory")]
    blocks.append(("p", f"Fixed image: {pair['dimension']}D, size {geometry['size']}, spacing "
                        f"{[round(s, 4) for s in geometry['spacing_mm']]} mm"
                        + ("; fixed mask given to every method" if pair.get("fixed_mask") else "") + "."
                        + (f" Files: {'; '.join(files)}." if files else "")))
    blocks.append(("table", *_method_table(pair["methods"], pair["initial"], reference, summary=False)))
    reasons = _reasons({"initial": pair["initial"], **pair["methods"]})
    if reasons:
        blocks.append(("list", reasons))
    method_rows = {m: entry["labels"] for m, entry in pair["methods"].items() if entry.get("labels") is not None}
    if pair["initial"].get("labels"):
        blocks.append(("h3", "Dice per label"))
        blocks.append(("table", *_label_table(pair["initial"]["labels"], method_rows, "dice", 3)))
        blocks.append(("h3", "HD95 per label (mm)"))
        blocks.append(("table", *_label_table(pair["initial"]["labels"], method_rows, "hd95_mm", 2)))
    figure = pair.get("files", {}).get("figure")
    if figure:
        blocks.append(("img", figure, f"registration of {pair['name']} by every method"))
    return blocks


def _summary_blocks(results: Mapping, reference: Optional[str]) -> list[tuple]:
    summary = results["summary"]
    blocks: list[tuple] = [
        ("h2", f"Means over {summary['pairs']} pairs"),
        ("p", "Each number is the mean over the pairs a method registered of its per-pair value "
              "(per-pair Dice and HD95 are means over labels)."),
        ("table", *_method_table(summary["methods"], summary["initial"], reference, summary=True)),
    ]
    method_rows = {m: entry["labels"] for m, entry in summary["methods"].items() if entry["pairs"]}
    if summary["initial"]["labels"]:
        blocks.append(("h3", "Mean Dice per label"))
        blocks.append(("table", *_label_table(summary["initial"]["labels"], method_rows, "dice", 3)))
        blocks.append(("h3", "Mean HD95 per label (mm)"))
        blocks.append(("table", *_label_table(summary["initial"]["labels"], method_rows, "hd95_mm", 2)))
    return blocks


def _definition_blocks(settings: Mapping, reference: Optional[str]) -> list[tuple]:
    threads = settings["threads"]
    if threads is None:
        threads = "each method's default (see itk_suits.register and run_elastix)"
    items = [
        "Dice and HD95 (95th-percentile Hausdorff distance, mm) compare the fixed labels with the moving "
        "labels resampled through each method's final transform (nearest neighbour); the row 'initial' "
        "uses the initial alignment alone. Per-pair values are means over labels.",
        "Folding: percentage of voxels whose Jacobian determinant of x -> T(x) is <= 0; SDlogJ: standard "
        "deviation of its logarithm. Both from each method's full fixed-to-moving transform sampled on the "
        "fixed grid (inside the fixed mask when one is given).",
        f"Time: each method's own registration time (SUITS: the whole register call; elastix: its "
        f"registration call), median of {settings['repeats']} run(s); threads: {threads}."
        + (f" 'time / {reference}' divides it by {reference}'s time on the same pair in the same run."
           if reference else ""),
        f"Initial alignment given to every method: {settings['initial_transform'] or 'none'}.",
        "Figures (3D: the middle slice of the first array axis): checkerboard of the fixed and the warped "
        "moving image, label boundaries, and the deformed grid and displacement magnitude (mm) of the motion "
        "beyond the initial alignment, T(x) - T0(x).",
    ]
    return [("h2", "Definitions"), ("list", items)]


def _environment_blocks(results: Mapping) -> list[tuple]:
    environment = results["environment"]
    rows = [[name, version or "not installed"] for name, version in environment["versions"].items()]
    return [
        ("h2", "Environment"),
        ("p", f"Created {results['created']} on {environment['platform']}, {environment['cpu_count']} CPUs. "
              "Command:"),
        ("code", environment["command"]),
        ("table", ["package", "version"], rows),
    ]


def _blocks(results: Mapping) -> list[tuple]:
    settings = results["settings"]
    reference = settings.get("time_reference")
    blocks: list[tuple] = [
        ("h1", "Registration comparison"),
        ("p", f"Methods: {', '.join(settings['methods'])}. Pairs: {len(results['pairs'])}. "
              "Every number is also in results.json."),
    ]
    if len(results["pairs"]) > 1:
        blocks += _summary_blocks(results, reference)
    for pair in results["pairs"]:
        blocks += _pair_blocks(pair, reference)
    return blocks + _definition_blocks(settings, reference) + _environment_blocks(results)


def _markdown_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _markdown(blocks: Sequence[tuple]) -> str:
    lines: list[str] = []
    for kind, *content in blocks:
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + content[0], ""]
        elif kind == "p":
            lines += [content[0], ""]
        elif kind == "code":
            lines += ["```", content[0], "```", ""]
        elif kind == "list":
            lines += [f"- {_markdown_cell(item)}" for item in content[0]] + [""]
        elif kind == "table":
            headers, rows = content
            lines.append("| " + " | ".join(map(_markdown_cell, headers)) + " |")
            lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(headers) - 2)) + "|")
            lines += ["| " + " | ".join(map(_markdown_cell, row)) + " |" for row in rows] + [""]
        elif kind == "img":
            lines += [f"![{content[1]}]({content[0]})", ""]
    return "\n".join(lines)


_STYLE = """
body { font-family: sans-serif; max-width: 80em; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:nth-child(-n+2), td:nth-child(-n+2) { text-align: left; }
th { background: #f0f0f0; }
img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
"""


def _html(blocks: Sequence[tuple]) -> str:
    escape = html.escape
    parts = ["<!DOCTYPE html>", "<html lang=\"en\">", "<head>", "<meta charset=\"utf-8\">",
             "<title>Registration comparison</title>", f"<style>{_STYLE}</style>", "</head>", "<body>"]
    for kind, *content in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{escape(content[0])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{escape(content[0])}</p>")
        elif kind == "code":
            parts.append(f"<pre><code>{escape(content[0])}</code></pre>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{escape(item)}</li>" for item in content[0]) + "</ul>")
        elif kind == "table":
            headers, rows = content
            head = "".join(f"<th>{escape(cell)}</th>" for cell in headers)
            body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            parts.append(f"<p><img src=\"{escape(content[0])}\" alt=\"{escape(content[1])}\"></p>")
    return "\n".join(parts + ["</body>", "</html>", ""])


def write_report(results: Mapping, output_dir, *, overwrite: bool = False) -> dict:
    """Write ``results.json``, ``report.md`` and ``report.html`` into ``output_dir``.

    Parameters
    ----------
    results : mapping
        As returned by :func:`~itk_suits.evaluation.compare` (JSON-ready: see :func:`json_ready`).
    output_dir : str or os.PathLike
        Created when missing.
    overwrite : bool, default False
        Replace existing report files.

    Returns
    -------
    dict
        File name -> path relative to ``output_dir``.

    Raises
    ------
    FileExistsError
        A report file exists and ``overwrite`` is False (nothing is written then).
    ParameterError
        ``results`` lacks the pairs or settings of a comparison.
    """
    if not isinstance(results, Mapping) or not {"pairs", "settings", "environment"} <= set(results):
        raise ParameterError("results must be the dict returned by itk_suits.evaluation.compare or evaluate")
    root = pathlib.Path(output_dir)
    check_writable([root / name for name in REPORT_FILES], overwrite)
    root.mkdir(parents=True, exist_ok=True)
    files = {name: name for name in REPORT_FILES}
    content = json_ready({**results, "files": files})
    blocks = _blocks(content)
    (root / "results.json").write_text(json.dumps(content, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (root / "report.md").write_text(_markdown(blocks), encoding="utf-8")
    (root / "report.html").write_text(_html(blocks), encoding="utf-8")
    return files
