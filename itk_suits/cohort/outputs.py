"""The output folder of a cohort: what it holds, how a finished pair is recognised, the summary.

Layout::

    out/cohort.json          the cohort's parameters and version: marks the folder as a cohort output
    out/summary.csv          one row per pair (rewritten after every pair)
    out/<name>/              what RegistrationResult.save() writes, warped_labels.nii.gz,
                             and summary.json, written last: the pair's row and inputs

A pair is finished when its ``summary.json`` says ``ok``, names the same
inputs, and every file it lists exists; anything else (no record, a failed
or interrupted run, other inputs) is registered again. Records are written
to a temporary file and renamed, so a record is never half written.
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Iterable, Mapping, Optional

from .._version import __version__
from ..errors import ParameterError
from .pairs import CohortPair

__all__ = [
    "COHORT_FILE", "SUMMARY_FILE", "PAIR_RECORD", "open_output", "finished_row", "write_pair_record",
    "remove_pair_record", "write_summary", "summary_columns",
]

COHORT_FILE = "cohort.json"
SUMMARY_FILE = "summary.csv"
PAIR_RECORD = "summary.json"
#: Summary columns before the per-label Dice columns, and after them.
LEADING_COLUMNS = ("name", "status", "seconds", "folding_percent", "mean_dice_initial", "mean_dice")
TRAILING_COLUMNS = ("error",)
#: Parameters that change where or how fast a pair runs, not its result: a resumed cohort may change them.
_RUN_SETTINGS = ("device", "threads")


def _write_json(path: str, record: Mapping) -> None:
    """Write ``record`` to ``path`` through a temporary file and a rename (never half written)."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(record, stream, indent=2)
        stream.write("\n")
    os.replace(temporary, path)


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as stream:
            record = json.load(stream)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _result_settings(parameters: Mapping) -> dict:
    return {name: value for name, value in parameters.items() if name not in _RUN_SETTINGS}


def _changed(before: Mapping, now: Mapping) -> list:
    """Names whose values differ, sorted; a name one side lacks counts as ``None`` there (a setting or
    column added since the earlier run, which had no value for it)."""
    return sorted(name for name in set(before) | set(now) if before.get(name) != now.get(name))


def open_output(directory: str, parameters: Mapping, overwrite: bool) -> bool:
    """Make ``directory`` the output of a cohort with ``parameters``; whether earlier pairs may be kept.

    A missing or empty folder becomes a cohort output. A folder that already
    is one (it has ``cohort.json``) is resumed when it was made with the same
    parameters (device and threads aside). Anything else needs ``overwrite``.

    Parameters
    ----------
    directory : str
        The output folder.
    parameters : mapping
        JSON-ready registration parameters of the cohort
        (:meth:`~itk_suits.registration.RegistrationParameters.to_dict`).
    overwrite : bool
        Redo every pair, replacing the files of earlier runs.

    Returns
    -------
    bool
        ``True`` when finished pairs of an earlier run can be skipped (resume).

    Raises
    ------
    FileExistsError
        ``directory`` is a file, or a non-empty folder that is not a cohort output, and ``overwrite`` is false.
    ParameterError
        ``directory`` holds a cohort run with other parameters and ``overwrite`` is false.
    """
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise FileExistsError(f"output {directory} is a file, not a folder; choose a folder")
    record_path = os.path.join(directory, COHORT_FILE)
    earlier = _read_json(record_path)
    if not overwrite and os.path.isdir(directory) and os.listdir(directory):
        if earlier is None:
            raise FileExistsError(
                f"output folder {directory} is not empty and holds no cohort run ({COHORT_FILE}); choose "
                "another folder, or pass overwrite=True (CLI: --overwrite) to write into it"
            )
        before = _result_settings(earlier.get("parameters", {}))
        now = _result_settings(json.loads(json.dumps(parameters)))
        changed = _changed(before, now)
        if changed:
            details = ", ".join(f"{name}: {before.get(name)!r} there, {now.get(name)!r} now" for name in changed)
            raise ParameterError(
                f"output folder {directory} holds a cohort run with other parameters ({details}); pass "
                "overwrite=True (CLI: --overwrite) to redo every pair, or choose another folder"
            )
    os.makedirs(directory, exist_ok=True)
    _write_json(record_path, {"itk_suits_version": __version__, "parameters": dict(parameters)})
    return not overwrite


def _record_path(directory: str, pair: CohortPair) -> str:
    return os.path.join(directory, pair.name, PAIR_RECORD)


def finished_row(directory: str, pair: CohortPair) -> Optional[dict]:
    """The summary row of ``pair`` when an earlier run finished it, else ``None``.

    Finished: its ``summary.json`` holds status ``ok``, the same inputs, and
    every file it lists exists.
    """
    record = _read_json(_record_path(directory, pair))
    if record is None or not isinstance(record.get("inputs"), dict) or _changed(record["inputs"], pair.inputs()):
        return None
    row = record.get("row")
    files = record.get("files")
    if not isinstance(row, dict) or row.get("status") != "ok" or not isinstance(files, list):
        return None
    if not all(os.path.isfile(os.path.join(directory, pair.name, name)) for name in files):
        return None
    return row


def write_pair_record(directory: str, pair: CohortPair, row: Mapping, files: Iterable[str]) -> None:
    """Write ``pair``'s record (its row, inputs and files) last: it marks the folder complete when ``ok``."""
    os.makedirs(os.path.join(directory, pair.name), exist_ok=True)
    _write_json(_record_path(directory, pair), {
        "itk_suits_version": __version__, "row": dict(row), "inputs": pair.inputs(), "files": sorted(files),
    })


def remove_pair_record(directory: str, pair: CohortPair) -> None:
    """Remove ``pair``'s record before it is registered again, so an interrupted run is redone."""
    try:
        os.remove(_record_path(directory, pair))
    except FileNotFoundError:
        pass


def summary_columns(rows: Iterable[Mapping]) -> list[str]:
    """The summary's columns: the leading ones, one ``dice_<label>`` per label met (ascending), ``error``."""
    labels = set()
    for row in rows:
        labels.update(int(key[len("dice_"):]) for key in row if key.startswith("dice_") and key[5:].isdigit())
    return list(LEADING_COLUMNS) + [f"dice_{label}" for label in sorted(labels)] + list(TRAILING_COLUMNS)


def _csv_value(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_summary(directory: str, rows: Iterable[Mapping]) -> str:
    """Write ``summary.csv`` (one row per pair, empty cells where a value does not apply); its path."""
    rows = list(rows)
    path = os.path.join(directory, SUMMARY_FILE)
    temporary = f"{path}.tmp"
    with open(temporary, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=summary_columns(rows), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _csv_value(value) for key, value in row.items()})
    os.replace(temporary, path)
    return path
