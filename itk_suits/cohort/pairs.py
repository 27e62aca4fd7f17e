"""The pairs of a cohort: a CSV file or a list, checked before any work.

A cohort CSV has one row per pair and a header naming its columns:

========================  ========  ==========================================================
column                    required  meaning
========================  ========  ==========================================================
``fixed``                 yes       fixed image file
``moving``                yes       moving image file
``fixed_mask``            no        mask on the fixed grid (non-zero = registered)
``fixed_labels``          no        label map on the fixed grid
``moving_labels``         no        label map on the moving grid (warped into the output)
``initial_transform``     no        ``identity``, ``geometry``, ``moments`` or a transform file
``fixed_modality``        no        modality of the fixed image (e.g. ``mr``), with ``moving_modality``
``moving_modality``       no        modality of the moving image (e.g. ``ct``), with ``fixed_modality``
``name``                  no        output folder name (default ``<fixed stem>__<moving stem>``)
========================  ========  ==========================================================

Paths are relative to the CSV file's folder (absolute paths work too); an
empty cell is no value. Paths are kept absolute, so the pairs can be sent to
workers that share the file system. A pair's modalities replace the
cohort's ``modalities`` for that pair (a cohort may mix CT -> MR and MR -> CT
pairs for a model with one network per modality).
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from ..errors import InputImageError, ModalityError, ParameterError
from ..features.model import checked_modalities
from ..interop.datasets import file_stem

__all__ = ["CohortPair", "COLUMNS", "REQUIRED_COLUMNS", "read_pairs_csv", "cohort_pairs"]

#: Columns of a cohort CSV, required ones first.
COLUMNS = ("fixed", "moving", "fixed_mask", "fixed_labels", "moving_labels", "initial_transform",
           "fixed_modality", "moving_modality", "name")
REQUIRED_COLUMNS = ("fixed", "moving")
#: Values of ``initial_transform`` that are not files.
INITIAL_TRANSFORM_NAMES = ("identity", "geometry", "moments")
#: Names a pair folder may not take: the cohort's own files.
RESERVED_NAMES = ("summary.csv", "cohort.json")
_FILE_COLUMNS = ("fixed", "moving", "fixed_mask", "fixed_labels", "moving_labels")

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class CohortPair:
    """One registration of a cohort, by file paths.

    Attributes
    ----------
    name : str
        Name of the pair and of its output folder.
    fixed, moving : str
        Absolute paths of the fixed and moving images.
    fixed_mask, fixed_labels, moving_labels : str or None
        Absolute paths of the optional mask and label maps.
    initial_transform : str or None
        ``"identity"``, ``"geometry"``, ``"moments"``, an absolute transform
        file path, or ``None`` (the cohort's default).
    fixed_modality, moving_modality : str or None
        The images' modalities (lowercase), both or neither; ``None``: the
        cohort's ``modalities``.
    """

    name: str
    fixed: str
    moving: str
    fixed_mask: Optional[str] = None
    fixed_labels: Optional[str] = None
    moving_labels: Optional[str] = None
    initial_transform: Optional[str] = None
    fixed_modality: Optional[str] = None
    moving_modality: Optional[str] = None

    def inputs(self) -> dict:
        """The pair as a JSON-ready dict (what a finished pair records, to recognise it)."""
        return asdict(self)

    def modalities(self) -> Optional[tuple]:
        """``(fixed_modality, moving_modality)``, or ``None`` when the pair names none."""
        return None if self.fixed_modality is None else (self.fixed_modality, self.moving_modality)

    def has_labels(self) -> bool:
        """Whether both label maps are given (Dice is measured)."""
        return self.fixed_labels is not None and self.moving_labels is not None


def _cell(value: Any) -> Optional[str]:
    """A CSV cell or a dict value as a stripped string, ``None`` when empty."""
    if value is None:
        return None
    text = os.fspath(value).strip() if isinstance(value, (str, os.PathLike)) else str(value).strip()
    return text or None


def _pair(values: Mapping[str, Any], folder: str, where: str) -> CohortPair:
    """One checked pair from column values; paths relative to ``folder``."""
    unknown = sorted(set(values) - set(COLUMNS))
    if unknown:
        raise ParameterError(f"{where}: unknown column(s) {unknown}; the columns are {list(COLUMNS)}")
    cells = {column: _cell(values.get(column)) for column in COLUMNS}
    for column in REQUIRED_COLUMNS:
        if cells[column] is None:
            raise ParameterError(f"{where}: no {column} image (the columns {list(REQUIRED_COLUMNS)} are required)")
    for column in _FILE_COLUMNS:
        if cells[column] is not None:
            cells[column] = os.path.abspath(os.path.join(folder, os.path.expanduser(cells[column])))
            if not os.path.isfile(cells[column]):
                raise InputImageError(f"{where}: {column} file not found: {cells[column]}")
    transform = cells["initial_transform"]
    if transform is not None and transform.lower() not in INITIAL_TRANSFORM_NAMES:
        cells["initial_transform"] = os.path.abspath(os.path.join(folder, os.path.expanduser(transform)))
        if not os.path.isfile(cells["initial_transform"]):
            raise InputImageError(
                f"{where}: initial_transform is neither one of {list(INITIAL_TRANSFORM_NAMES)} nor a file: "
                f"{cells['initial_transform']}"
            )
    elif transform is not None:
        cells["initial_transform"] = transform.lower()
    named = [cells[column] for column in ("fixed_modality", "moving_modality")]
    if named.count(None) == 1:
        raise ModalityError(f"{where}: give both fixed_modality and moving_modality, or neither")
    if named[0] is not None:
        cells["fixed_modality"], cells["moving_modality"] = checked_modalities(named, f"{where}: the modalities")
    name = cells["name"] or f"{file_stem(cells['fixed'])}__{file_stem(cells['moving'])}"
    _check_name(name, where)
    return CohortPair(**{**cells, "name": name})


def _check_name(name: str, where: str) -> None:
    """A pair name must be usable as one folder name inside the output folder."""
    if name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name or name in RESERVED_NAMES:
        raise ParameterError(
            f"{where}: name {name!r} cannot be a folder of the output (no '/' or '\\', no leading '.', "
            f"not {' or '.join(RESERVED_NAMES)})"
        )


def _check_unique(pairs: Sequence[CohortPair], source: str) -> None:
    seen: dict[str, int] = {}
    for index, pair in enumerate(pairs):
        if pair.name in seen:
            raise ParameterError(
                f"{source}: pairs {seen[pair.name] + 1} and {index + 1} are both named {pair.name!r}; every pair "
                "needs its own output folder: give them different names (the 'name' column)"
            )
        seen[pair.name] = index


def read_pairs_csv(path: PathLike) -> list[CohortPair]:
    """Read and check a cohort CSV.

    Parameters
    ----------
    path : path-like
        CSV file with a header row (see the module documentation for the columns).

    Returns
    -------
    list of CohortPair
        In the order of the rows; paths absolute.

    Raises
    ------
    ParameterError
        No such CSV, a missing required column, an unknown column, an empty
        required cell, no row, duplicate or unusable names.
    InputImageError
        A file named in the CSV does not exist.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ParameterError(f"no cohort CSV at {path}")
    folder = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8-sig") as stream:
        reader = csv.DictReader(stream)
        header = [column.strip() for column in (reader.fieldnames or [])]
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if missing:
            raise ParameterError(f"{path}: missing column(s) {missing} in the header {header}; "
                                 f"the columns are {list(COLUMNS)}")
        unknown = [column for column in header if column not in COLUMNS]
        if unknown:
            raise ParameterError(f"{path}: unknown column(s) {unknown}; the columns are {list(COLUMNS)}")
        reader.fieldnames = header
        pairs = []
        for row in reader:
            if all(_cell(value) is None for value in row.values() if not isinstance(value, list)):
                continue  # a blank line
            if None in row:  # more cells than columns
                raise ParameterError(f"{path}, line {reader.line_num}: more cells than columns {header}")
            pairs.append(_pair(row, folder, f"{path}, line {reader.line_num}"))
    if not pairs:
        raise ParameterError(f"{path}: no pair (the CSV has a header but no rows)")
    _check_unique(pairs, path)
    return pairs


def cohort_pairs(pairs: Union[PathLike, Iterable[Any]]) -> list[CohortPair]:
    """The checked pairs of a cohort, from a CSV file or a sequence.

    Parameters
    ----------
    pairs : path-like or iterable
        A cohort CSV (:func:`read_pairs_csv`), or items that are each a
        :class:`CohortPair`, a mapping with the CSV's columns as keys, or a
        ``(fixed, moving)`` tuple; relative paths are relative to the current folder.

    Returns
    -------
    list of CohortPair

    Raises
    ------
    ParameterError, InputImageError
        As :func:`read_pairs_csv`, and for items of another kind.
    """
    if isinstance(pairs, (str, os.PathLike)):
        return read_pairs_csv(pairs)
    folder = os.getcwd()
    checked = []
    for index, item in enumerate(pairs):
        where = f"pair {index + 1}"
        if isinstance(item, CohortPair):
            item = {field.name: getattr(item, field.name) for field in fields(CohortPair)}
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            item = {"fixed": item[0], "moving": item[1]}
        elif not isinstance(item, Mapping):
            raise ParameterError(f"{where}: expected a CohortPair, a dict with the columns {list(COLUMNS)} or a "
                                 f"(fixed, moving) tuple of paths, got {type(item).__name__}")
        checked.append(_pair(item, folder, where))
    if not checked:
        raise ParameterError("the cohort has no pair")
    _check_unique(checked, "the cohort")
    return checked
