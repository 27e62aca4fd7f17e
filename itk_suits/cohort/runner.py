"""``register_many``: register a cohort of pairs into one output folder, locally or on a Dask cluster."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterable, Iterator, Mapping, Sequence, Union

from ..checks import checked_number
from ..errors import ParameterError
from ..progress import progress_bar
from .outputs import finished_row, open_output, write_summary
from .pairs import CohortPair, cohort_pairs
from .task import register_pairs

__all__ = ["register_many", "DEFAULT_GPU_BATCH_SIZE"]

#: Pairs registered as one batched descent on a GPU unless ``batch_size`` says otherwise.
DEFAULT_GPU_BATCH_SIZE = 8
_MAX_BATCH_SIZE = 4096


def _parameters(options: Mapping, pairs: Sequence[CohortPair]):
    """The cohort's validated registration parameters, checked against every pair's modalities (before any work)."""
    from ..features import get_feature_extractor
    from ..features.registry import is_auto
    from ..registration import RegistrationParameters

    try:
        parameters = RegistrationParameters(**options)
    except TypeError:
        unknown = sorted(set(options) - set(RegistrationParameters.__dataclass_fields__))
        raise ParameterError(f"unknown option(s) {unknown}; the registration parameters are "
                             f"{list(RegistrationParameters.__dataclass_fields__)}") from None
    parameters = parameters.validated()
    if is_auto(parameters.features):
        return parameters  # each registration resolves it to features its images' modalities accept
    extractor = get_feature_extractor(parameters.features)
    for modalities in {pair.modalities() or parameters.modalities for pair in pairs}:
        for role, modality in zip(("fixed", "moving"), modalities or (None, None)):
            extractor.check_modality(role, modality)
    return parameters


def _batch_size(batch_size, device: str, scheduler) -> int:
    """Pairs per batched descent: ``batch_size``, else several on CUDA and one on a CPU."""
    if batch_size is not None:
        batch_size = checked_number(batch_size, "batch_size", 1, _MAX_BATCH_SIZE, integer=True)
        if scheduler is not None and batch_size > 1:
            raise ParameterError("batch_size applies to local runs; on a Dask scheduler every task is one pair")
        return batch_size
    if scheduler is not None:
        return 1
    from ..core import resolve_device

    return DEFAULT_GPU_BATCH_SIZE if resolve_device(device).type == "cuda" else 1


def _fixed_size(pair: CohortPair) -> tuple:
    """The fixed image's size from its header (a pair whose header cannot be read stays alone)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(pair.fixed)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return ("unreadable", pair.name)
    return tuple(reader.GetSize())


def batches(pairs: Sequence[CohortPair], batch_size: int) -> list[list[CohortPair]]:
    """Pairs grouped by fixed image size into batches of at most ``batch_size``, in order of first appearance."""
    if batch_size == 1:
        return [[pair] for pair in pairs]
    groups: dict[tuple, list[CohortPair]] = {}
    for pair in pairs:
        groups.setdefault(_fixed_size(pair), []).append(pair)
    return [group[start:start + batch_size] for group in groups.values()
            for start in range(0, len(group), batch_size)]


def _run_locally(pairs, output_dir, options, batch_size) -> Iterator[tuple[CohortPair, dict]]:
    for batch in batches(pairs, batch_size):
        yield from zip(batch, register_pairs(batch, output_dir, options))


def _run_on_scheduler(pairs, output_dir, options, scheduler, workers) -> Iterator[tuple[CohortPair, dict]]:
    from .cluster import dask_client, run_on_cluster

    with dask_client(scheduler, workers) as client:
        yield from run_on_cluster(client, pairs, output_dir, options)


def register_many(
    pairs: Union[str, os.PathLike, Iterable[Any]],
    output_dir: Union[str, os.PathLike],
    *,
    batch_size: int | None = None,
    scheduler=None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **options,
) -> list[dict]:
    """Register a cohort of image pairs, one output folder per pair, with a summary.

    Each pair ``p`` gets ``output_dir/<p.name>/`` with what
    :meth:`~itk_suits.registration.RegistrationResult.save` writes
    (``warped.nii.gz``, ``displacement.nii.gz`` in mm, ``transform.h5``,
    ``checkerboard.png``, ``parameters.json``), ``warped_labels.nii.gz``
    when it has moving labels, and ``summary.json`` (its row, written last).
    ``output_dir/summary.csv`` has one row per pair, rewritten after every
    pair. A pair that fails is recorded (status ``failed`` and the error) and
    the others go on. Run again on the same folder, the cohort skips the pairs
    finished before (status ``skipped``, their earlier numbers) and redoes
    the rest, half-written folders included.

    Parameters
    ----------
    pairs : path-like or iterable
        A cohort CSV (columns ``fixed``, ``moving`` and optionally
        ``fixed_mask``, ``fixed_labels``, ``moving_labels``,
        ``initial_transform``, ``name``; paths relative to the CSV's folder),
        or a sequence of :class:`~itk_suits.cohort.CohortPair`, dicts with
        those keys, or ``(fixed, moving)`` path tuples.
    output_dir : path-like
        The cohort's folder: new, empty, or the folder of an earlier run of
        this cohort with the same parameters (resumed).
    batch_size : int, optional
        Pairs with fixed images of the same size registered as one batched
        descent (the same fields as one at a time, faster on a GPU). Default:
        :data:`DEFAULT_GPU_BATCH_SIZE` on CUDA, 1 on a CPU. Local runs only.
    scheduler : None, "local", str or distributed.Client
        ``None``: in this process. ``"local"``: a Dask ``LocalCluster`` of
        ``workers`` single-threaded processes. A scheduler address
        (``"tcp://host:8786"``) or a ``distributed.Client``: that cluster.
        Needs ``pip install "itk-suits[dask]"``; the workers need itk-suits
        and the same file system.
    workers : int, optional
        Worker processes of the local cluster (default: one per core).
    overwrite : bool
        Redo every pair, replacing earlier files, and write into a non-empty
        folder that is not a cohort output.
    progress : bool
        A progress bar over the pairs on stderr.
    **options
        Registration parameters shared by all pairs (see
        :class:`~itk_suits.registration.RegistrationParameters`): ``features``,
        ``grid_spacings``, ``iterations``, ``smoothness``, ``learning_rate``,
        ``tolerance``, ``device``, ``threads``, and ``initial_transform`` for
        the pairs that do not give their own. On a scheduler they travel to
        the workers, so they must be picklable (names, numbers, paths).

    Returns
    -------
    list of dict
        The summary rows, in the order of ``pairs``: ``name``, ``status``
        (``"ok"``, ``"failed"`` or ``"skipped"``), ``seconds``,
        ``folding_percent`` (% of voxels with a non-positive Jacobian
        determinant), with both label maps ``mean_dice_initial`` (before any
        registration), ``mean_dice`` and ``dice_<label>``, and ``error``.

    Raises
    ------
    ParameterError, InputImageError
        Bad CSV or pairs (missing or unknown column, missing file, duplicate
        names) or options, a resumed folder made with other parameters, Dask
        missing; all before any registration.
    FileExistsError
        ``output_dir`` is a non-empty folder that is not a cohort output, and ``overwrite`` is false.
    """
    pairs = cohort_pairs(pairs)
    output_dir = os.fspath(output_dir)
    parameters = _parameters(options, pairs)
    if workers is not None and scheduler is None:
        raise ParameterError("workers sets the size of a local Dask cluster: pass scheduler='local' with it")
    if scheduler is not None:
        from .cluster import check_scheduler

        check_scheduler(scheduler, workers)
    size = _batch_size(batch_size, parameters.device, scheduler)
    resume = open_output(output_dir, parameters.to_dict(), overwrite)

    rows: dict[str, dict] = {}
    if resume:
        for pair in pairs:
            row = finished_row(output_dir, pair)
            if row is not None:
                rows[pair.name] = {**row, "status": "skipped"}
    todo = [pair for pair in pairs if pair.name not in rows]

    def ordered() -> list[dict]:
        return [rows[pair.name] for pair in pairs if pair.name in rows]

    write_summary(output_dir, ordered())
    if todo:
        run = (_run_locally(todo, output_dir, options, size) if scheduler is None
               else _run_on_scheduler(todo, output_dir, options, scheduler, workers))
        bar = progress_bar(len(pairs), "pairs", "pair", disable=not progress, initial=len(rows))
        failed = 0
        with contextlib.closing(run), bar:
            for pair, row in run:
                rows[pair.name] = row
                failed += row["status"] == "failed"
                write_summary(output_dir, ordered())
                bar.update(1)
                bar.set_postfix(failed=failed, refresh=False)
    return ordered()
