"""Compare registration methods on image pairs: SUITS, itk-elastix, SimpleElastix, ANTs and ConvexAdam.

:func:`compare` registers one pair with several methods, :func:`evaluate`
many pairs (:class:`~itk_suits.interop.datasets.RegistrationPair`); both
return every number as one JSON-ready dict and, given ``output_dir``, write
it with a Markdown and an HTML report and one figure per pair
(:mod:`itk_suits.evaluation.report`).

Methods
-------
``"suits-<features>"``
    ``itk_suits.register(fixed, moving, features=<features>)``, e.g.
    ``"suits-mind"``. A feature extractor that is not available (an unknown
    name, a model that is not installed) is reported as skipped with its
    error message.
``"elastix"``, ``"elastix-bspline"``
    :func:`~itk_suits.evaluation.elastix.run_elastix` with the parameter maps
    of :data:`~itk_suits.evaluation.elastix.METHOD_MAPS` (elastix's default
    affine then B-spline maps, or the B-spline map alone), unless
    ``elastix_maps`` gives others.
``"simpleelastix"``
    :func:`~itk_suits.evaluation.simpleelastix.run_simpleelastix` (affine
    then B-spline) in the separate interpreter the user configured; skipped,
    with the reason, when there is none.
``"ants"``, ``"ants-full"``
    :func:`~itk_suits.evaluation.ants.run_ants` with the settings of
    :data:`~itk_suits.evaluation.ants.METHOD_SETTINGS` (antspyx's ``"SyN"``
    defaults, which stop before the finest level; ``"SyNAggro"`` through the
    finest level), in the interpreter of ``ants_python`` /
    ``ITK_SUITS_ANTS_PYTHON``; skipped, with the reason, when there is none.
``"convexadam"``
    :func:`~itk_suits.evaluation.convexadam.run_convexadam` (MIND-SSC
    defaults, on an isotropic working grid) in the interpreter of
    ``convexadam_python`` / ``ITK_SUITS_CONVEXADAM_PYTHON``; skipped, with
    the reason, when there is none. It takes no fixed mask.

Fairness: every method gets the same fixed mask and the same initial
alignment, resolved once per pair, and the same thread count. Every method
is scored the same way from its final fixed-to-moving transform (initial
alignment included): moving labels resampled through it (nearest neighbour)
against the fixed labels, and its displacement field sampled on the fixed
grid for folding and SDlogJ (inside the fixed mask when there is one).
Runtime is each method's own registration time (SUITS: the whole
``register`` call; elastix: its registration call), the median of
``repeats`` runs, and its ratio to the time of the itk-elastix run on the
same pair in the same process.
"""

from __future__ import annotations

import math
import numbers
import os
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk

from itk_suits.errors import InputImageError, ParameterError, SuitsError
from itk_suits.progress import progress_bar
from itk_suits.evaluation import ants, convexadam, elastix, external, metrics, report, simpleelastix
from itk_suits.interop.datasets import PairSequence, RegistrationPair
from itk_suits.interop import images as image_io
from itk_suits.interop import transforms as transform_io

__all__ = ["DEFAULT_METHODS", "compare", "evaluate", "method_names"]

DEFAULT_METHODS = ("suits-mind", "elastix")

#: Methods timed against, in order of preference: the first one in the method list is the reference.
TIME_REFERENCES = ("elastix", "elastix-bspline")

_SUITS_PREFIX = "suits-"


@dataclass(frozen=True)
class _Settings:
    """Options shared by every pair of one comparison."""

    methods: tuple[str, ...]
    initial_transform: Any
    repeats: int
    threads: Optional[int]
    suits_options: Mapping[str, Any]
    elastix_maps: Mapping[str, Sequence[Any]]
    simpleelastix_python: Optional[str]
    ants_python: Optional[str] = None
    convexadam_python: Optional[str] = None


@dataclass(frozen=True)
class _Pair:
    """One pair read into SimpleITK images, with its initial alignment resolved."""

    name: str
    fixed: sitk.Image
    moving: sitk.Image
    fixed_labels: Optional[sitk.Image]
    moving_labels: Optional[sitk.Image]
    fixed_mask: Optional[sitk.Image]
    initial: Optional[sitk.Transform]
    labels: tuple[int, ...]
    label_names: Optional[Mapping[int, str]]
    description: dict


@dataclass(frozen=True)
class _Output:
    """What one method run gives back: its transform, its own time and method details."""

    transform: sitk.Transform
    seconds: float
    details: dict = field(default_factory=dict)


class _Unavailable(Exception):
    """A method cannot run here (not installed, not configured); the message says why."""


# --- the method registry ------------------------------------------------------------


def _suits(features: str) -> Callable[[_Pair, _Settings], _Output]:
    def run(pair: _Pair, settings: _Settings) -> _Output:
        from itk_suits.features import get_feature_extractor
        from itk_suits.registration import register

        try:
            get_feature_extractor(features)
        except SuitsError as error:
            raise _Unavailable(str(error)) from error
        result = register(
            pair.fixed, pair.moving, features=features, fixed_mask=pair.fixed_mask,
            initial_transform=pair.initial, threads=settings.threads, **settings.suits_options,
        )
        return _Output(result.sitk_transform, result.seconds, {
            "device": result.device,
            "iterations": [entry["iterations"] for entry in result.log],
        })

    return run


def _elastix(method: str) -> Callable[[_Pair, _Settings], _Output]:
    def run(pair: _Pair, settings: _Settings) -> _Output:
        result = elastix.run_elastix(
            pair.fixed, pair.moving, fixed_mask=pair.fixed_mask, threads=settings.threads,
            initial_transform=pair.initial, **_elastix_parameters(method, settings.elastix_maps),
        )
        return _Output(result.transform, result.seconds)

    return run


def _simpleelastix(pair: _Pair, settings: _Settings) -> _Output:
    try:
        result = simpleelastix.run_simpleelastix(
            pair.fixed, pair.moving, python=settings.simpleelastix_python, fixed_mask=pair.fixed_mask,
            threads=settings.threads, initial_transform=pair.initial,
            **_elastix_parameters("simpleelastix", settings.elastix_maps),
        )
    except simpleelastix.SimpleElastixUnavailable as error:
        raise _Unavailable(str(error)) from error
    return _Output(result.transform, result.seconds)


def _ants(method: str) -> Callable[[_Pair, _Settings], _Output]:
    def run(pair: _Pair, settings: _Settings) -> _Output:
        try:
            result = ants.run_ants(
                pair.fixed, pair.moving, python=settings.ants_python, fixed_mask=pair.fixed_mask,
                threads=settings.threads, initial_transform=pair.initial, **ants.METHOD_SETTINGS[method],
            )
        except external.PeerUnavailable as error:
            raise _Unavailable(str(error)) from error
        return _Output(result.transform, result.seconds, {"settings": dict(ants.METHOD_SETTINGS[method])})

    return run


def _convexadam(pair: _Pair, settings: _Settings) -> _Output:
    try:
        result = convexadam.run_convexadam(
            pair.fixed, pair.moving, python=settings.convexadam_python, threads=settings.threads,
            initial_transform=pair.initial,
        )
    except external.PeerUnavailable as error:
        raise _Unavailable(str(error)) from error
    details = {"settings": dict(convexadam.DEFAULT_OPTIONS),
               "working_spacing_mm": convexadam.working_grid(pair.fixed).GetSpacing()[0]}
    if pair.fixed_mask is not None:
        details["fixed_mask"] = "not used (ConvexAdam takes masks of both images)"
    return _Output(result.transform, result.seconds, details)


#: The peers run by interpreters of their own: method name -> runner.
_PEERS = {**{name: _ants(name) for name in ants.METHOD_SETTINGS}, "convexadam": _convexadam}


def method_names() -> list[str]:
    """Method names :func:`compare` accepts now (``suits-`` with every available feature extractor).

    Returns
    -------
    list of str
        E.g. ``["ants", "ants-full", "convexadam", "elastix", "elastix-bspline", "simpleelastix",
        "suits-intensity", "suits-mind"]``.
    """
    from itk_suits.features import available_features

    return sorted([*elastix.METHOD_MAPS, "simpleelastix", *_PEERS] + [_SUITS_PREFIX + f for f in available_features()])


def _runner(method: str) -> Callable[[_Pair, _Settings], _Output]:
    """The function running ``method``; ParameterError for a name that is no method."""
    if method in elastix.METHOD_MAPS:
        return _elastix(method)
    if method == "simpleelastix":
        return _simpleelastix
    if method in _PEERS:
        return _PEERS[method]
    if method.startswith(_SUITS_PREFIX) and len(method) > len(_SUITS_PREFIX):
        return _suits(method[len(_SUITS_PREFIX):])
    raise ParameterError(
        f"unknown method {method!r} in methods; use 'suits-<features>' (e.g. 'suits-mind'), "
        f"{', '.join(repr(name) for name in [*elastix.METHOD_MAPS, 'simpleelastix', *_PEERS])}"
    )


#: Elastix stages of the elastix-based methods unless ``elastix_maps`` says otherwise.
_DEFAULT_STAGES = {**elastix.METHOD_MAPS, "simpleelastix": elastix.METHOD_MAPS["elastix"]}


def _elastix_parameters(method: str, elastix_maps: Mapping[str, Any]) -> dict:
    """``run_elastix``/``run_simpleelastix`` keywords: the method's parameter maps or parameter files.

    An entry of ``elastix_maps`` is a sequence of default map names and
    parameter mappings, or a sequence of elastix parameter files (any other
    string or path); one map, name or file alone also works.
    """
    stages = elastix_maps.get(method, _DEFAULT_STAGES[method])
    if isinstance(stages, (str, os.PathLike, Mapping)):
        stages = [stages]
    stages = list(stages)
    files = [item for item in stages if isinstance(item, os.PathLike)
             or (isinstance(item, str) and item not in elastix.DEFAULT_MAP_NAMES)]
    if not files:
        return {"parameter_maps": stages}
    if len(files) != len(stages):
        raise ParameterError(
            f"elastix_maps[{method!r}] mixes parameter files with map names or mappings; "
            "give either elastix parameter files or maps, not both"
        )
    return {"parameter_files": [os.fspath(item) for item in files]}


# --- reading the inputs ----------------------------------------------------------------


def _describe(obj: Any) -> str:
    """A path as given, or ``"in-memory <type>"``, for the report."""
    if isinstance(obj, (str, os.PathLike)):
        return os.fspath(obj)
    return f"in-memory {type(obj).__module__.split('.')[0]}.{type(obj).__name__}"


def _geometry(image: sitk.Image) -> dict:
    return {"size": list(image.GetSize()), "spacing_mm": list(image.GetSpacing())}


_ROLES = ("fixed", "moving", "fixed_labels", "moving_labels", "fixed_mask")


def _read_pair(pair: RegistrationPair, initial_transform: Any,
               sources: Optional[Mapping[str, Any]] = None) -> _Pair:
    """Check one pair's images for registration; resolve its initial alignment once.

    ``sources``: what the caller passed for each role (paths are recorded as
    such); default: the pair's own images.
    """
    for image, role in ((pair.fixed, "fixed"), (pair.moving, "moving")):
        image_io.check_intensity_image(image, f"{role} of pair {pair.name!r}")
    fixed = sitk.Cast(pair.fixed, sitk.sitkFloat32)
    moving = sitk.Cast(pair.moving, sitk.sitkFloat32)
    if (pair.fixed_labels is None) != (pair.moving_labels is None):
        raise ParameterError(
            f"pair {pair.name!r}: give both fixed_labels and moving_labels (label maps of the two "
            "images) or neither"
        )
    labels: tuple[int, ...] = ()
    if pair.fixed_labels is not None:
        values = sitk.GetArrayViewFromImage(pair.fixed_labels)
        labels = tuple(int(v) for v in np.unique(values[values != 0]))
    fixed_mask = None
    if pair.fixed_mask is not None:
        fixed_mask = sitk.Cast(pair.fixed_mask != 0, sitk.sitkUInt8)
        if not sitk.GetArrayViewFromImage(fixed_mask).any():
            raise InputImageError(
                f"fixed_mask of pair {pair.name!r} is empty (no non-zero voxel); give a mask of the region "
                "to register"
            )
    initial = transform_io.initial_transform(fixed, moving, initial_transform)
    sources = sources or {}
    description = {"name": pair.name}
    for role in _ROLES:
        given = sources.get(role, getattr(pair, role))
        description[role] = None if given is None else _describe(given)
    description.update({
        "dimension": fixed.GetDimension(),
        "fixed_geometry": _geometry(fixed),
        "moving_geometry": _geometry(moving),
        "labels": list(labels),
        "initial_transform": _describe_transform(initial),
        "regularity_region": "fixed mask" if fixed_mask is not None else "whole fixed image",
    })
    names = {int(k): str(v) for k, v in (pair.label_names or {}).items()}
    return _Pair(pair.name, fixed, moving, pair.fixed_labels, pair.moving_labels, fixed_mask, initial, labels,
                 names, description)


def _describe_transform(transform: Optional[sitk.Transform]) -> Optional[dict]:
    if transform is None:
        return None
    return {
        "type": transform.GetName(),
        "parameters": list(transform.GetParameters()),
        "fixed_parameters": list(transform.GetFixedParameters()),
    }


# --- scoring --------------------------------------------------------------------------


def _field(transform: Optional[sitk.Transform], reference: sitk.Image) -> sitk.Image:
    """``transform(x) - x`` in mm at every voxel of ``reference`` (zero for None)."""
    if transform is None:
        transform = sitk.Transform(reference.GetDimension(), sitk.sitkIdentity)
    return elastix.displacement_field_on(transform, reference)


def _nanmean(values: Iterable[Optional[float]]) -> Optional[float]:
    """Mean of the finite values, None when there is none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _label_scores(pair: _Pair, warped_labels: Optional[sitk.Image]) -> dict:
    """Per-label table of warped moving labels and its means (empty without labels).

    ``mean_hd95_mm`` averages the labels found in both images; ``labels_missing``
    counts the labels present in only one of them (HD95 undefined).
    """
    if warped_labels is None:
        return {}
    rows = metrics.label_table(pair.fixed_labels, warped_labels, labels=pair.labels, names=pair.label_names)
    return {
        "labels": rows,
        "mean_dice": _nanmean(row["dice"] for row in rows),
        "mean_hd95_mm": _nanmean(row["hd95_mm"] for row in rows),
        "labels_missing": sum(1 for row in rows if row["hd95_mm"] == math.inf),
    }


def _panel(pair: _Pair, transform: Optional[sitk.Transform],
           beyond_initial: Optional[np.ndarray] = None) -> report.MethodImages:
    """Warp the moving image (linear) and labels (nearest) onto the fixed grid.

    ``beyond_initial``: ``transform(x) - initial(x)`` in mm, array order
    ``(*shape, ndim)``; it becomes the figure's displacement in voxels.
    """
    warped = image_io.resample(pair.moving, pair.fixed, transform, "linear")
    warped_labels = None
    if pair.moving_labels is not None:
        warped_labels = image_io.resample(pair.moving_labels, pair.fixed, transform, "nearest")
    displacement = None
    if beyond_initial is not None:
        field_image = sitk.GetImageFromArray(beyond_initial, isVector=True)
        field_image.CopyInformation(pair.fixed)
        displacement = transform_io.index_displacement_from_field(field_image).astype(np.float32)
    return report.MethodImages(transform, warped, warped_labels, displacement)


def _run_method(method: str, pair: _Pair, settings: _Settings) -> tuple[dict, Optional[_Output]]:
    """Run one method ``repeats`` times; its record and the last output (None unless it ran)."""
    run = _runner(method)
    seconds, wall_seconds = [], []
    output = None
    try:
        for _ in range(settings.repeats):
            start = time.perf_counter()
            output = run(pair, settings)
            wall_seconds.append(time.perf_counter() - start)
            seconds.append(output.seconds)
    except _Unavailable as reason:
        return {"status": "skipped", "reason": str(reason)}, None
    except SuitsError as error:
        return {"status": "failed", "reason": " ".join(str(error).split())}, None
    record = {
        "status": "ok",
        "seconds": statistics.median(seconds),
        "seconds_runs": seconds,
        "wall_seconds_runs": wall_seconds,
        "threads": settings.threads,
        **output.details,
    }
    return record, output


def _compare_pair(pair: _Pair, settings: _Settings, bar) -> tuple[dict, dict]:
    """Every method on one pair: the pair's record and the panels of its figure."""
    initial_field = sitk.GetArrayFromImage(_field(pair.initial, pair.fixed))
    before = _panel(pair, pair.initial)
    panels = {"initial": before}
    record = {**pair.description, "initial": _label_scores(pair, before.warped_labels), "methods": {}}
    for method in settings.methods:
        bar.set_postfix(pair=pair.name, method=method)
        result, output = _run_method(method, pair, settings)
        if output is not None:
            total = _field(output.transform, pair.fixed)
            result["folding_percent"] = metrics.folding_percentage(total, pair.fixed_mask)
            result["sdlogj"] = metrics.log_jacobian_std(total, pair.fixed_mask)
            panels[method] = _panel(pair, output.transform, sitk.GetArrayFromImage(total) - initial_field)
            result.update(_label_scores(pair, panels[method].warped_labels))
        record["methods"][method] = result
        bar.update(1)
    _add_time_ratios(record["methods"], _time_reference(settings.methods))
    return record, panels


def _time_reference(methods: Sequence[str]) -> Optional[str]:
    return next((method for method in TIME_REFERENCES if method in methods), None)


def _add_time_ratios(records: dict, reference: Optional[str]) -> None:
    """``time_ratio``: each method's time over the reference method's time on the same pair."""
    base = records.get(reference, {}).get("seconds") if reference else None
    for record in records.values():
        if record["status"] == "ok":
            record["time_ratio"] = record["seconds"] / base if base else None


# --- summary over pairs ----------------------------------------------------------------


def _mean_labels(tables: list[list[dict]]) -> list[dict]:
    """Per-label means over pairs of Dice and HD95, with the number of pairs having the label."""
    by_label: dict[int, list[dict]] = {}
    for rows in tables:
        for row in rows:
            by_label.setdefault(row["label"], []).append(row)
    return [
        {
            "label": label,
            "name": rows[0].get("name"),
            "dice": _nanmean(row["dice"] for row in rows),
            "hd95_mm": _nanmean(row["hd95_mm"] for row in rows),
            "pairs": len(rows),
        }
        for label, rows in sorted(by_label.items())
    ]


_SUMMED = ("mean_dice", "mean_hd95_mm", "folding_percent", "sdlogj", "seconds", "time_ratio")


def _summary(records: list[dict], methods: Sequence[str]) -> dict:
    """Means over pairs of every per-pair number, per method and for the initial alignment."""
    initial = [record["initial"] for record in records]
    summary = {
        "pairs": len(records),
        "initial": {
            "mean_dice": _nanmean(entry.get("mean_dice") for entry in initial),
            "mean_hd95_mm": _nanmean(entry.get("mean_hd95_mm") for entry in initial),
            "labels": _mean_labels([entry.get("labels", []) for entry in initial]),
        },
        "methods": {},
    }
    for method in methods:
        runs = [record["methods"][method] for record in records]
        done = [run for run in runs if run["status"] == "ok"]
        entry = {"pairs": len(done), "skipped": sum(r["status"] == "skipped" for r in runs),
                 "failed": sum(r["status"] == "failed" for r in runs)}
        entry.update({key: _nanmean(run.get(key) for run in done) for key in _SUMMED})
        entry["labels"] = _mean_labels([run.get("labels", []) for run in done])
        summary["methods"][method] = entry
    return summary


# --- the public functions --------------------------------------------------------------


def _method_list(methods: Union[str, Sequence[str]]) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = [part.strip() for part in methods.split(",") if part.strip()]
    methods = tuple(methods)
    if not methods:
        raise ParameterError("methods is empty; give at least one method, e.g. ('suits-mind', 'elastix')")
    for method in methods:
        if not isinstance(method, str):
            raise ParameterError(f"methods must be names (str), got {method!r}")
        _runner(method)
    if len(set(methods)) != len(methods):
        raise ParameterError(f"methods lists a method twice: {methods}")
    return methods


def _path(value) -> Optional[str]:
    return None if value is None else os.fspath(value)


def _settings(methods, initial_transform, repeats, threads, suits_options, elastix_maps,
              simpleelastix_python, ants_python=None, convexadam_python=None) -> _Settings:
    """Validated options, before any image is read or any method runs."""
    from itk_suits.registration import RegistrationParameters

    methods = _method_list(methods)
    if isinstance(repeats, bool) or not isinstance(repeats, numbers.Integral) or repeats < 1:
        raise ParameterError(f"repeats must be a positive integer, got {repeats!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral)
                                or threads < 1):
        raise ParameterError(f"threads must be a positive integer or None, got {threads!r}")
    suits_options = dict(suits_options or {})
    reserved = {"features", "fixed_mask", "initial_transform", "threads"} & set(suits_options)
    if reserved:
        raise ParameterError(
            f"suits_options may not set {sorted(reserved)}: the comparison gives every method the "
            "same mask, initial alignment and threads (use the arguments of the same names)"
        )
    try:
        RegistrationParameters(**suits_options).validated()
    except TypeError as error:
        raise ParameterError(
            f"suits_options: {error}; use the fields of itk_suits.RegistrationParameters "
            "(grid_spacings, iterations, smoothness, learning_rate, tolerance, device)"
        ) from error
    elastix_maps = dict(elastix_maps or {})
    unknown = set(elastix_maps) - set(_DEFAULT_STAGES)
    if unknown:
        raise ParameterError(
            f"elastix_maps has entries for {sorted(unknown)}; only {sorted(_DEFAULT_STAGES)} "
            "take elastix maps"
        )
    for method in elastix_maps:
        parameters = _elastix_parameters(method, elastix_maps)
        if "parameter_files" in parameters:
            elastix.check_parameter_files(parameters["parameter_files"])
        else:
            elastix.check_parameter_maps(parameters["parameter_maps"])
    return _Settings(methods, initial_transform, int(repeats), threads, suits_options, elastix_maps,
                     _path(simpleelastix_python), _path(ants_python), _path(convexadam_python))


def _settings_record(settings: _Settings) -> dict:
    given = settings.initial_transform
    record = {
        "methods": list(settings.methods),
        "initial_transform": given if given is None or isinstance(given, str) else _describe(given),
        "repeats": settings.repeats,
        "threads": settings.threads,
        "time_reference": _time_reference(settings.methods),
        "suits_options": dict(settings.suits_options),
        "elastix_maps": {method: _maps_record(method, settings.elastix_maps) for method in settings.elastix_maps},
        "simpleelastix_python": settings.simpleelastix_python,
        "ants_python": settings.ants_python,
        "convexadam_python": settings.convexadam_python,
    }
    if "simpleelastix" in settings.methods:
        record["simpleelastix"] = simpleelastix.find_simpleelastix(settings.simpleelastix_python)[1]
    if any(method in ants.METHOD_SETTINGS for method in settings.methods):
        record["ants"] = ants.find_ants(settings.ants_python)[1]
    if "convexadam" in settings.methods:
        record["convexadam"] = convexadam.find_convexadam(settings.convexadam_python)[1]
    return record


def _maps_record(method: str, elastix_maps: Mapping[str, Any]) -> dict:
    """The stages of one elastix-based method as JSON: parameter files, or map names and maps."""
    parameters = _elastix_parameters(method, elastix_maps)
    if "parameter_files" in parameters:
        return parameters
    return {"parameter_maps": [stage if isinstance(stage, str) else
                               {key: list(value) if isinstance(value, (list, tuple)) else [value]
                                for key, value in stage.items()}
                               for stage in parameters["parameter_maps"]]}


def _run(pairs: Sequence[RegistrationPair], names: Sequence[str], settings: _Settings, output_dir, *,
         overwrite: bool, save_outputs: bool, progress: bool,
         sources: Optional[Mapping[str, Any]] = None) -> dict:
    """Register every pair with every method; write the report when ``output_dir`` is given."""
    files = [report.safe_name(name) for name in names]
    if len(set(files)) != len(files):
        raise ParameterError(f"pair names must be distinct (as file names), got {list(names)}")
    if output_dir is not None:
        planned = report.planned_files(output_dir, files, settings.methods if save_outputs else ())
        report.check_writable(planned, overwrite)

    results = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": report.environment(),
        "settings": _settings_record(settings),
        "pairs": [],
    }
    bar = progress_bar(len(names) * len(settings.methods), "compare", "run", disable=not progress)
    try:
        for pair, file_name in zip(pairs, files):  # a PairSequence reads each pair here, one at a time
            checked = _read_pair(pair, settings.initial_transform, sources)
            record, panels = _compare_pair(checked, settings, bar)
            if output_dir is not None:
                record["files"] = report.save_pair(
                    output_dir, file_name, record, panels, fixed=checked.fixed,
                    fixed_labels=checked.fixed_labels, save_outputs=save_outputs, overwrite=overwrite,
                )
            results["pairs"].append(record)
    finally:
        bar.close()
    results["summary"] = _summary(results["pairs"], settings.methods)
    results = report.json_ready(results)
    if output_dir is not None:
        results["files"] = report.write_report(results, output_dir, overwrite=overwrite)
    return results


def compare(
    fixed,
    moving,
    *,
    fixed_labels=None,
    moving_labels=None,
    fixed_mask=None,
    methods: Union[str, Sequence[str]] = DEFAULT_METHODS,
    initial_transform=None,
    label_names: Optional[Mapping[int, str]] = None,
    output_dir: Union[str, os.PathLike, None] = None,
    repeats: int = 1,
    threads: Optional[int] = None,
    overwrite: bool = False,
    name: str = "pair",
    spacing=None,
    moving_spacing=None,
    suits_options: Optional[Mapping[str, Any]] = None,
    elastix_maps: Optional[Mapping[str, Sequence[Any]]] = None,
    simpleelastix_python: Union[str, os.PathLike, None] = None,
    ants_python: Union[str, os.PathLike, None] = None,
    convexadam_python: Union[str, os.PathLike, None] = None,
    save_outputs: bool = False,
    progress: bool = True,
) -> dict:
    """Register one pair with several methods and score them the same way.

    Parameters
    ----------
    fixed, moving : itk.Image, SimpleITK.Image, numpy.ndarray or path
        Scalar 2D or 3D images, as for :func:`itk_suits.register`.
    fixed_labels, moving_labels : image, optional
        Integer label maps (0 = background) of the two images; ``fixed_labels``
        on the fixed grid, ``moving_labels`` in the moving image's space. Both
        or neither. Scored labels: the non-zero labels of ``fixed_labels``.
    fixed_mask : image, optional
        Mask on the fixed grid (non-zero = inside), given to every method;
        folding and SDlogJ are measured inside it.
    methods : str or sequence of str, default ("suits-mind", "elastix")
        Method names (see the module docstring), or one comma-separated string.
    initial_transform : None, "identity", "geometry", "moments", transform or path
        Initial alignment (fixed -> moving), resolved once with
        :func:`itk_suits.interop.transforms.initial_transform` and given to every method.
    label_names : mapping of int to str, optional
        Names of the labels, for the tables.
    output_dir : str or os.PathLike, optional
        Write ``results.json``, ``report.md``, ``report.html`` and
        ``figures/<name>.png`` there (nothing is written without it).
    repeats : int, default 1
        Runs per method; the reported time is their median, the scores are
        those of the last run.
    threads : int, optional
        Threads for every method (SUITS: torch CPU threads; elastix: its
        ``-threads``). Default: each method's own default.
    overwrite : bool, default False
        Replace existing report files; otherwise FileExistsError before any run.
    name : str, default "pair"
        Name of the pair in the report and its file names.
    spacing, moving_spacing : sequence of float, optional
        Spacing (x, y[, z], mm) of numpy inputs (the moving one defaults to ``spacing``).
    suits_options : mapping, optional
        Further keyword arguments of :func:`itk_suits.register` for the SUITS
        methods, e.g. ``{"iterations": 20, "grid_spacings": (12, 8)}``.
    elastix_maps : mapping of str to sequence, optional
        Per elastix-based method (``"elastix"``, ``"elastix-bspline"``,
        ``"simpleelastix"``): its
        registration stages instead of :data:`~itk_suits.evaluation.elastix.METHOD_MAPS`,
        as map names or parameter maps (see
        :func:`~itk_suits.evaluation.elastix.default_parameter_map`), or as
        elastix parameter files (paths).
    simpleelastix_python : path, optional
        Interpreter of the separate environment with SimpleElastix (see
        :func:`~itk_suits.evaluation.simpleelastix.run_simpleelastix`).
    ants_python, convexadam_python : path, optional
        Interpreters of the separate environments with antspyx and convexadam
        (default: ``ITK_SUITS_ANTS_PYTHON``, ``ITK_SUITS_CONVEXADAM_PYTHON``; see
        :func:`~itk_suits.evaluation.ants.run_ants` and
        :func:`~itk_suits.evaluation.convexadam.run_convexadam`).
    save_outputs : bool, default False
        Also write, per method, ``<name>/<method>/transform.h5`` (fixed -> moving),
        ``warped.nii.gz`` and ``warped_labels.nii.gz`` into ``output_dir``.
    progress : bool, default True
        Show a tqdm progress bar.

    Returns
    -------
    dict
        The content of ``results.json``: ``created``, ``environment`` (command,
        package versions, platform), ``settings``, ``pairs`` (one record:
        per method ``status`` ("ok", "skipped" or "failed" with a ``reason``),
        ``labels`` (rows with label, name, dice, hd95_mm and volumes in mm^3),
        ``mean_dice``, ``mean_hd95_mm``, ``folding_percent``, ``sdlogj``,
        ``seconds`` (median), ``seconds_runs``, ``time_ratio``, ``threads``;
        and ``initial``, the label scores before registration), ``summary``
        and, with ``output_dir``, ``files``. Undefined numbers are None.

    Raises
    ------
    ParameterError
        Unknown method names, bad ``repeats``/``threads``/``suits_options``/``elastix_maps``,
        only one of the two label maps.
    InputImageError, PixelTypeError, GeometryError, TransformError
        Images that cannot be registered, labels or a mask off the fixed grid,
        an unreadable initial transform.
    FileExistsError
        Report files exist in ``output_dir`` and ``overwrite`` is False.

    Examples
    --------
    >>> from itk_suits.evaluation import compare
    >>> results = compare("t2.nii.gz", "t1.nii.gz", fixed_labels="t2_seg.nii.gz",
    ...                   moving_labels="t1_seg.nii.gz", output_dir="report")  # doctest: +SKIP
    >>> results["pairs"][0]["methods"]["suits-mind"]["mean_dice"]  # doctest: +SKIP
    """
    settings = _settings(methods, initial_transform, repeats, threads, suits_options, elastix_maps,
                         simpleelastix_python, ants_python, convexadam_python)
    given = {"fixed": fixed, "moving": moving, "fixed_labels": fixed_labels, "moving_labels": moving_labels,
             "fixed_mask": fixed_mask}
    moving_spacing = spacing if moving_spacing is None else moving_spacing
    images = {
        role: None if value is None else image_io.as_sitk_image(
            value, name=role, spacing=moving_spacing if role.startswith("moving") else spacing)[0]
        for role, value in given.items()
    }
    pair = RegistrationPair(name=name, label_names=dict(label_names or {}), **images)
    return _run([pair], [name], settings, output_dir, overwrite=overwrite, save_outputs=save_outputs,
                progress=progress, sources=given)


def evaluate(
    pairs: Iterable[RegistrationPair],
    methods: Union[str, Sequence[str]] = DEFAULT_METHODS,
    output_dir: Union[str, os.PathLike, None] = None,
    *,
    initial_transform=None,
    repeats: int = 1,
    threads: Optional[int] = None,
    overwrite: bool = False,
    suits_options: Optional[Mapping[str, Any]] = None,
    elastix_maps: Optional[Mapping[str, Sequence[Any]]] = None,
    simpleelastix_python: Union[str, os.PathLike, None] = None,
    ants_python: Union[str, os.PathLike, None] = None,
    convexadam_python: Union[str, os.PathLike, None] = None,
    save_outputs: bool = False,
    progress: bool = True,
) -> dict:
    """Compare methods over many pairs and average the scores.

    Every pair is scored as in :func:`compare`; ``summary`` adds, per method,
    the mean over the pairs it registered of ``mean_dice``, ``mean_hd95_mm``,
    ``folding_percent``, ``sdlogj``, ``seconds`` and ``time_ratio``, and per
    label the mean Dice and HD95 over the pairs that have the label.

    Parameters
    ----------
    pairs : PairSequence or iterable of RegistrationPair
        E.g. from :func:`~itk_suits.interop.datasets.pairs_from_dataset_json`.
        A :class:`~itk_suits.interop.datasets.PairSequence` is read one
        pair at a time; any other iterable is first made a list. Pair names
        must be distinct.
    methods, output_dir, initial_transform, repeats, threads, overwrite, suits_options,
    elastix_maps, simpleelastix_python, ants_python, convexadam_python, save_outputs, progress
        As for :func:`compare`; ``initial_transform`` is resolved for each pair.

    Returns
    -------
    dict
        As for :func:`compare`, with one record per pair in ``pairs`` and the
        means in ``summary``.

    Raises
    ------
    ParameterError
        No pairs, or as for :func:`compare`.
    """
    settings = _settings(methods, initial_transform, repeats, threads, suits_options, elastix_maps,
                         simpleelastix_python, ants_python, convexadam_python)
    if isinstance(pairs, PairSequence):
        names = pairs.names
    else:
        pairs = list(pairs)
        names = [pair.name for pair in pairs]
    if not names:
        raise ParameterError("pairs is empty: nothing to evaluate (check the dataset file, split or folders)")
    return _run(pairs, names, settings, output_dir, overwrite=overwrite, save_outputs=save_outputs,
                progress=progress)
