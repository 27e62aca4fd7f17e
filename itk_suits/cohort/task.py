"""Register pairs of a cohort and write each pair's folder and summary row.

The unit of work of a cohort, the same locally and on a Dask worker: file
paths in, files out, one summary row per pair back. Several pairs whose fixed
images have the same size can be registered as one batched descent
(:func:`~itk_suits.registration.update_together`); each is then finished,
measured and written on its own. A pair that fails gives a ``failed`` row
with the error message instead of stopping the others.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..evaluation.metrics import dice, folding_percentage
from ..interop import images as image_io
from ..registration import RegistrationResult, SuitsRegistrationMethod, update_together
from ..registration.result import SAVED_FILES
from .outputs import remove_pair_record, write_pair_record
from .pairs import CohortPair

__all__ = ["register_pairs", "failed_row", "WARPED_LABELS"]

#: The moving label map resampled onto the fixed grid (nearest neighbour), when there is one.
WARPED_LABELS = "warped_labels.nii.gz"


def failed_row(pair: CohortPair, error: BaseException) -> dict:
    """The summary row of a pair that could not be registered: its error in one line."""
    message = " ".join(str(error).split()) or type(error).__name__
    return {"name": pair.name, "status": "failed", "error": f"{type(error).__name__}: {message}"}


def _method(pair: CohortPair, options: Mapping) -> SuitsRegistrationMethod:
    """The registration of ``pair`` with the cohort's ``options`` (the pair's own initial transform and
    modalities first)."""
    parameters = dict(options)
    if pair.initial_transform is not None:
        parameters["initial_transform"] = pair.initial_transform
    if pair.modalities() is not None:
        parameters["modalities"] = pair.modalities()
    method = SuitsRegistrationMethod.New(pair.fixed, pair.moving, **parameters)
    if pair.fixed_mask is not None:
        method.SetFixedMask(pair.fixed_mask)
    return method


def _read(path: str, role: str) -> sitk.Image:
    return image_io.as_sitk_image(path, name=role)[0]


def _mean(values) -> Optional[float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else None


def _label_scores(pair: CohortPair, result: RegistrationResult, directory: str) -> tuple[dict, list[str]]:
    """Warp the moving labels into ``directory``; Dice before and after when the fixed labels are given.

    Returns the row's label columns (``mean_dice_initial``, ``mean_dice``,
    ``dice_<label>``; a label absent from both maps has no Dice: ``None``) and
    the files written.
    """
    if pair.moving_labels is None:
        return {}, []
    moving_labels = _read(pair.moving_labels, "moving_labels")
    warped = result.warp(moving_labels, interpolator="nearest")
    sitk.WriteImage(warped, os.path.join(directory, WARPED_LABELS))
    if pair.fixed_labels is None:
        return {}, [WARPED_LABELS]
    fixed_labels = _read(pair.fixed_labels, "fixed_labels")
    initial = image_io.resample(moving_labels, fixed_labels, None, "nearest")  # no registration at all
    after = dice(fixed_labels, warped)
    columns = {
        "mean_dice_initial": _mean(dice(fixed_labels, initial, list(after)).values()),
        "mean_dice": _mean(after.values()),
    }
    columns.update({f"dice_{label}": None if math.isnan(value) else value for label, value in after.items()})
    return columns, [WARPED_LABELS]


def _write(pair: CohortPair, result: RegistrationResult, output_dir: str) -> dict:
    """Save ``result`` and the warped labels into the pair's folder, measure, and write its record last."""
    directory = os.path.join(output_dir, pair.name)
    result.save(directory, overwrite=True)  # the pair's folder belongs to the cohort
    mask = None if pair.fixed_mask is None else _read(pair.fixed_mask, "fixed_mask")
    row = {"name": pair.name, "status": "ok", "seconds": result.seconds,
           "folding_percent": folding_percentage(result.displacement_field, mask)}
    labels, files = _label_scores(pair, result, directory)
    row.update(labels)
    write_pair_record(output_dir, pair, row, list(SAVED_FILES) + files)
    return row


def register_pairs(pairs: Sequence[CohortPair], output_dir: str, options: Mapping) -> list[dict]:
    """Register ``pairs`` as one batch (a batch of one is a plain registration) and write their folders.

    Parameters
    ----------
    pairs : sequence of CohortPair
        Pairs whose fixed images have the same size when there are several.
    output_dir : str
        The cohort's output folder; pair ``p`` is written to ``output_dir/p.name``.
    options : mapping
        Registration parameters shared by the pairs (fields of
        :class:`~itk_suits.registration.RegistrationParameters`).

    Returns
    -------
    list of dict
        One summary row per pair, in order: ``name``, ``status`` (``"ok"`` or
        ``"failed"``), ``seconds`` (registration wall time; the descent time of
        a batch is counted for each of its pairs), ``folding_percent`` (voxels
        of the SUITS field with a Jacobian determinant <= 0, inside the fixed
        mask when there is one), with both label maps ``mean_dice_initial``
        (no registration), ``mean_dice`` and ``dice_<label>``, and for a failed
        pair ``error``.
    """
    for pair in pairs:
        remove_pair_record(output_dir, pair)
    methods, rows = [], [None] * len(pairs)
    for index, pair in enumerate(pairs):
        try:
            methods.append((index, _method(pair, options)))
        except Exception as error:  # noqa: BLE001 - recorded for this pair; the others go on
            rows[index] = failed_row(pair, error)
    outcomes = update_together([method for _, method in methods]) if methods else []
    for (index, _), outcome in zip(methods, outcomes):
        if isinstance(outcome, BaseException):
            rows[index] = failed_row(pairs[index], outcome)
            continue
        try:
            rows[index] = _write(pairs[index], outcome, output_dir)
        except Exception as error:  # noqa: BLE001
            rows[index] = failed_row(pairs[index], error)
    for pair, row in zip(pairs, rows):
        if row["status"] == "failed":
            write_pair_record(output_dir, pair, row, [])
    return rows
