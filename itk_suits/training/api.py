"""``train_features``: learn SUITS features from two modalities and write a model folder.

The model folder ``out`` ends up holding::

    ct.onnx, mr.onnx          the networks, one per named modality (fixed.onnx and moving.onnx
                              without names, or shared.onnx), see itk_suits.features.model
    model.json                the model card; its "training" entry records the run
    model.pt                  torch weights (for fine-tuning, ``itk-suits export``)
    checkpoint.pt             the last training state (see :mod:`.checkpoint`)
    training_log.csv          one row per feature update (:attr:`FeatureTrainer.history`)
    loss.png                  loss, constant-feature loss and their ratio per update

While training, ``checkpoint.pt``, ``training_log.csv`` and ``loss.png`` are
rewritten after every scale and every ``checkpoint_every`` updates; a run that
is interrupted continues from its last checkpoint when called again with the
same arguments (``resume=True``), and ends with the same weights as an
uninterrupted run with the same device, torch version and number of CPU
threads (floating-point sums are ordered by the thread count).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import inspect
import json
import logging
import os
import pathlib
from typing import Callable, Sequence

import numpy as np
import torch

from itk_suits.core import resolve_device
from itk_suits.schedule import Scale, build_schedule
from itk_suits.errors import ParameterError
from itk_suits.progress import progress_bar
from itk_suits.features.cnn import FeaturePair
from itk_suits.features.model import card_networks, trained_modalities
from itk_suits.features.onnx import export_onnx
from itk_suits.training.checkpoint import (
    CHECKPOINT_NAME,
    check_output_folder,
    clear_output_folder,
    data_fingerprint,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from itk_suits.training.pairs import training_pairs
from itk_suits.training.trainer import FeatureTrainer, TrainingPair, TrainingSettings

__all__ = ["LOG_NAME", "PLOT_NAME", "plot_training_history", "train_features", "train_on_pairs",
           "training_scales", "write_training_log"]

LOG_NAME = "training_log.csv"
PLOT_NAME = "loss.png"
#: Epoch and scale boundaries beyond which :func:`plot_training_history` draws them without labels.
MAX_LABELLED_SEGMENTS = 12
_LOG_COLUMNS = ("update", "epoch", "scale", "batch", "batches", "loss", "constant_loss", "ratio", "seconds")

logger = logging.getLogger(__name__)


def training_scales(scales) -> tuple:
    """A training schedule: :class:`~itk_suits.core.Scale` objects or ``(grid_spacing, iterations, smoothness)``.

    Raises
    ------
    ParameterError
        An empty schedule, or an entry that is neither.
    """
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) or not scales:
        raise ParameterError(f"scales must be a non-empty list of Scale or (grid_spacing, iterations, smoothness), "
                             f"got {scales!r}")
    entries = []
    for entry in scales:
        if not isinstance(entry, Scale):
            if not isinstance(entry, Sequence) or len(entry) != 3:
                raise ParameterError(f"a scale is a Scale or (grid_spacing, iterations, smoothness), got {entry!r}")
            entry = Scale(*entry)
        entries.append(entry)
    checked = build_schedule([e.grid_spacing for e in entries], [e.iterations for e in entries],
                             [e.smoothness for e in entries])
    if any(scale.iterations < 1 for scale in checked):
        raise ParameterError(f"every training scale needs at least one iteration, got {scales!r}")
    return tuple(dataclasses.replace(scale, resolution=entry.resolution) for scale, entry in zip(checked, entries))


def write_training_log(history: Sequence[dict], path) -> pathlib.Path:
    """Write the history records as CSV, one row per feature update; returns the path."""
    path = pathlib.Path(path)
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=_LOG_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    return path


def plot_training_history(history: Sequence[dict], path, title: str = "") -> pathlib.Path:
    """Plot loss, constant-feature loss and their ratio per feature update, with scale boundaries.

    Parameters
    ----------
    history : sequence of dict
        :attr:`FeatureTrainer.history` records.
    path : path-like
        PNG file to write.
    title : str
        Figure title.

    Returns
    -------
    pathlib.Path
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    updates = [record["update"] for record in history]
    figure = Figure(figsize=(8, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(updates, [r["loss"] for r in history], lw=1, label="loss (learned features)")
    top.plot(updates, [r["constant_loss"] for r in history], lw=1, label="loss of constant features")
    top.set_yscale("log")
    top.set_ylabel("loss")
    top.legend(loc="upper right", fontsize="small")
    ratios = [r["ratio"] for r in history]
    bottom.plot(updates, ratios, lw=0.6, color="0.6", label="per update")
    window = max(1, len(ratios) // 30)
    if len(ratios) >= window > 1:
        smooth = np.convolve(ratios, np.ones(window) / window, mode="valid")
        bottom.plot(updates[window - 1:], smooth, lw=1.5, color="C0", label=f"mean of {window}")
    bottom.axhline(1.0, color="C3", lw=1, ls="--", label="constant features (collapse)")
    bottom.set_ylabel("loss / constant loss")
    bottom.set_xlabel("feature update")
    bottom.legend(loc="upper right", fontsize="small")
    starts = [record for previous, record in zip(history, history[1:])
              if (record["epoch"], record["scale"]) != (previous["epoch"], previous["scale"])]
    labelled = len(starts) <= MAX_LABELLED_SEGMENTS  # beyond that, lines without labels stay readable
    for record in starts:
        new_epoch = record["scale"] == 0  # the schedule starts again
        for axes in (top, bottom):
            axes.axvline(record["update"] - 0.5, color="k", lw=(1.5 if new_epoch else 0.7) * (1 if labelled else 0.4),
                         ls=":")
        if labelled:
            label = f"scale {record['scale'] + 1}"
            if new_epoch:
                label = f"epoch {record['epoch'] + 1}, {label}"
            top.text(record["update"], 1.0, f" {label}", transform=top.get_xaxis_transform(), va="top",
                     fontsize="small")
    if title:
        figure.suptitle(title)
    figure.savefig(path)
    return pathlib.Path(path)


def _device_text(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA ({device}, {torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"CPU ({threads} torch thread{'s' if threads != 1 else ''})"


def _final_mean_ratio(history: Sequence[dict]) -> float:
    """Mean collapse ratio over the updates of the last scale of the last epoch."""
    last = history[-1]
    ratios = [r["ratio"] for r in history if (r["epoch"], r["scale"]) == (last["epoch"], last["scale"])]
    return float(np.mean(ratios))


def _modality_names(shared: bool, modalities) -> tuple | None:
    """The checked modality names of the networks (``None``: not named); refuses what the export would refuse."""
    names = trained_modalities(modalities)
    card_networks(shared, names)
    return names


def _check_ndim(pairs: Sequence[TrainingPair], ndim) -> int:
    dimensions = {pair.fixed.dim() - 2 for pair in pairs}
    if len(dimensions) != 1 or not dimensions <= {2, 3}:
        raise ParameterError(f"training pairs must all be 2D or all 3D, got dimensions {sorted(dimensions)}")
    found = dimensions.pop()
    if ndim is not None and ndim != found:
        hint = " (slice_axis trains 2D networks on slices of 3D volumes)" if ndim == 2 else ""
        raise ParameterError(f"ndim={ndim!r} but the training images are {found}D{hint}")
    return found


def train_on_pairs(
    pairs: Sequence[TrainingPair] | Callable[[int], Sequence[TrainingPair]],
    out,
    *,
    mode: str = "algorithm1",
    shared: bool = False,
    architecture: str = "featurecnn",
    ndim: int | None = None,
    scales=None,
    epochs: int = 1,
    settings: TrainingSettings | None = None,
    device="auto",
    seed: int = 0,
    checkpoint_every: int = 50,
    resume: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[dict], None] | None = None,
    name: str | None = None,
    description: str = "",
    modalities=None,
    data: dict | None = None,
    command: str | None = None,
) -> pathlib.Path:
    """Train feature networks on ready training pairs and write the model folder.

    :func:`train_features` reads images into pairs and calls this;
    use it directly for pairs made otherwise (e.g.
    :func:`~itk_suits.training.pairs.synthetic_training_pairs`). The
    parameters shared with :func:`train_features` are described there.

    Parameters
    ----------
    pairs : sequence of TrainingPair, or callable
        The training pairs, or a function of the epoch giving each epoch's
        pairs (e.g. new synthetic pairs every epoch; see
        :class:`~itk_suits.training.trainer.FeatureTrainer`). The card and
        the checkpoints record the first epoch's pairs.
    data : dict, optional
        Description of the data for the model card (counts, shapes, spacing);
        the pairs' count, shapes and checksum are always recorded.
    command : str, optional
        The command or call that started the run, for the model card
        (default: a description of this call).

    Returns
    -------
    pathlib.Path
        The model folder ``out``.
    """
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ParameterError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    resume_from = check_output_folder(out, resume=resume, overwrite=overwrite)
    source = pairs
    if callable(pairs):
        pairs = list(source(0))

        def source(epoch, fresh=source, first=pairs):
            return first if epoch == 0 else fresh(epoch)
    if not pairs:
        raise ParameterError("feature training needs at least one pair")
    ndim = _check_ndim(pairs, ndim)
    settings = dataclasses.replace(
        settings or TrainingSettings(), mode=mode, epochs=epochs, seed=seed,
        **({} if scales is None else {"scales": training_scales(scales)}),
    )
    device = resolve_device(device)
    torch.manual_seed(seed)
    networks = FeaturePair(ndim, shared=shared, architecture=architecture).to(device)
    trainer = FeatureTrainer(networks, source, settings)
    _announce(f"training {ndim}D SUITS features ({settings.mode}) on {len(pairs)} pairs"
              f"{' (new ones every epoch)' if callable(source) else ''}, on {_device_text(device)}",
              progress)
    fingerprint = data_fingerprint(pairs)
    network = {"ndim": ndim, "shared": bool(shared), "architecture": networks.architecture}
    run = {"settings": settings.to_dict(), "network": network, "data": fingerprint}
    names = _modality_names(shared, modalities)
    card_fields = {"name": str(name or pathlib.Path(out).resolve().name), "description": str(description),
                   "modalities": None if names is None else list(names)}
    if resume_from is not None:
        restore_checkpoint(load_checkpoint(resume_from), trainer, run, source=os.fspath(resume_from))
        _announce(f"resuming {os.fspath(resume_from)} after update {len(trainer.history)}", progress)
    elif overwrite:
        clear_output_folder(out)
    resumed = resume_from is not None
    directory = pathlib.Path(out)

    def save(scale_end: bool) -> None:
        save_checkpoint(directory, trainer, run, **card_fields)
        write_training_log(trainer.history, directory / LOG_NAME)
        if scale_end:
            plot_training_history(trainer.history, directory / PLOT_NAME,
                                  title=f"{settings.mode}: {card_fields['name']}")

    bar = progress_bar(trainer.planned_updates(), "training features", "update", disable=not progress,
                       initial=len(trainer.history))

    def step(record: dict) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.3g}", ratio=f"{record['ratio']:.3f}", scale=record["scale"])
        scale_end = record["batch"] + 1 == record["batches"]
        if scale_end or (record["update"] + 1) % checkpoint_every == 0:
            save(scale_end)
        if callback is not None:
            callback(record)

    try:
        trainer.train(step)
    except KeyboardInterrupt:
        bar.close()
        if (directory / CHECKPOINT_NAME).is_file():
            _announce(f"interrupted; run again with the same arguments to resume from {directory / CHECKPOINT_NAME}",
                      progress)
        raise
    finally:
        bar.close()
    training = {
        "mode": settings.mode,
        "data": {**(data or {}), "fingerprint": fingerprint, "new_pairs_every_epoch": callable(source)},
        "settings": settings.to_dict(),
        "network": run["network"],
        "command": command or f"itk_suits.training.train_on_pairs(<{len(pairs)} pairs>, {os.fspath(out)!r}, ...)",
        "seconds": round(float(trainer.history[-1]["seconds"]), 2),
        "updates": len(trainer.history),
        "device": _device_text(device),
        "resumed": resumed,
        "final_mean_ratio": _final_mean_ratio(trainer.history),
        "torch_version": str(torch.__version__),
    }
    training = json.loads(json.dumps(training, default=str))  # plain values: model.pt loads with weights_only
    export_onnx(copy.deepcopy(networks).cpu().eval(), directory, torch_weights=True, overwrite=True,
                training=training, **card_fields)
    _announce(f"wrote {os.fspath(directory)}: {len(trainer.history)} updates in {training['seconds']:.1f} s on "
              f"{training['device']}, final mean loss ratio {training['final_mean_ratio']:.3f}", progress)
    return directory


def _announce(message: str, progress: bool) -> None:
    """Log ``message``; with ``progress`` also print it (above a progress bar)."""
    logger.info(message)
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(f"itk-suits: {message}")


def _images_text(images) -> str:
    """The images of a call: their paths, or how many and of what kind."""
    if isinstance(images, (list, tuple)) and all(isinstance(i, (str, os.PathLike)) for i in images):
        return repr([os.fspath(i) for i in images])
    if isinstance(images, (list, tuple)):
        kinds = sorted({type(i).__name__ for i in images})
        return f"<{len(images)} {'/'.join(kinds)} images>"
    return repr(images)


def _call_text(arguments: dict) -> str:
    """``itk_suits.train_features(...)`` with the image arguments and every keyword that is not a default."""
    signature = inspect.signature(train_features)
    parts = []
    for key, parameter in signature.parameters.items():
        value = arguments[key]
        if parameter.default is inspect.Parameter.empty:
            parts.append(f"{key}={_images_text(value) if key != 'out' else repr(os.fspath(value))}")
        elif not (value is parameter.default
                  or (type(value) is type(parameter.default) and value == parameter.default)):
            parts.append(f"{key}={value!r}")
    return f"itk_suits.train_features({', '.join(parts)})"


def train_features(
    fixed_images,
    fixed_labels,
    moving_images,
    moving_labels,
    out,
    *,
    mode: str = "algorithm1",
    shared: bool = False,
    architecture: str = "featurecnn",
    ndim: int | None = None,
    scales=None,
    epochs: int = 1,
    labels=None,
    label_mapping=None,
    spacing=None,
    shape=None,
    slice_axis=None,
    slices: int = 5,
    all_pairs: bool = True,
    initial="geometry",
    settings: TrainingSettings | None = None,
    device="auto",
    seed: int = 0,
    checkpoint_every: int = 50,
    resume: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[dict], None] | None = None,
    name: str | None = None,
    description: str = "",
    modalities=None,
    command: str | None = None,
) -> pathlib.Path:
    """Learn SUITS features from labelled images of two modalities; write a model folder.

    Parameters
    ----------
    fixed_images, fixed_labels, moving_images, moving_labels : list
        Images of the fixed and the moving modality (paths, itk, SimpleITK or
        numpy) and one label map per image; subjects need not correspond
        (see :func:`~itk_suits.training.pairs.training_pairs`, also for
        ``labels``, ``label_mapping``, ``spacing``, ``shape``,
        ``slice_axis``, ``slices``, ``all_pairs`` and ``initial``).
        :func:`~itk_suits.interop.datasets.folder_images` and
        :func:`~itk_suits.interop.datasets.dataset_json_images` list files.
    out : path-like
        The model folder to write (see the module docstring): new, empty, or
        the folder of an interrupted run to resume.
    mode : {"algorithm1", "unrolled", "sdm-regression"}
        The paper's step matching, back-propagation through unrolled
        descent iterations, or each modality's features regressing the signed
        distance maps of merged label groups (anatomy-anchored; the step loss
        is an auxiliary term with ``settings.step_weight`` > 0); see
        :mod:`~itk_suits.training.trainer`.
    shared : bool
        One network for both modalities instead of one each.
    architecture : {"featurecnn", "unet", "unet4"}
        The paper's 7-layer :class:`~itk_suits.features.cnn.FeatureCNN`, a
        small :class:`~itk_suits.features.cnn.FeatureUNet` (about 0.12 M
        parameters in 2D, 0.35 M in 3D) or its four-level form
        (:class:`~itk_suits.features.cnn.FeatureUNet4`, 0.49 M in 2D, 1.46 M in 3D).
    ndim : {2, 3}, optional
        Checked against the dimension of the training pairs.
    scales : sequence, optional
        The grid schedule: :class:`~itk_suits.core.Scale` objects or
        ``(grid_spacing_voxels, iterations, smoothness)``; default
        :func:`~itk_suits.schedule.build_schedule`'s defaults.
    epochs : int
        Passes over the whole schedule, each from identity grids.
    settings : TrainingSettings, optional
        Every other training setting (``mode``, ``scales``, ``epochs`` and
        ``seed`` given here replace its own).
    device : "auto", "cpu", "cuda[:N]" or torch.device
        Where to train; ``"auto"`` is CUDA when torch sees a GPU. The device
        is printed (with ``progress``), logged and written in the model card.
    seed : int
        Seeds the network initialisation, the presentation scheme and torch.
    checkpoint_every : int
        Feature updates between checkpoints (one is also written after every
        scale).
    resume : bool
        Continue from ``out/checkpoint.pt`` when there is one (it must come
        from a run with the same settings and data).
    overwrite : bool
        Start afresh in a folder that holds a finished model or a checkpoint
        (removing the training outputs there).
    progress : bool
        Show a progress bar over feature updates (loss and collapse ratio)
        and print the device.
    callback : callable, optional
        Called with each history record after it is saved (raising from it
        stops training; the last checkpoint stays).
    name, description : str, optional
        Model card entries (``name`` defaults to the folder name).
    modalities : (str, str) or dict, optional
        The modality of the fixed and of the moving training images, e.g.
        ``("ct", "mr")`` or ``{"fixed": "ct", "moving": "mr"}``: the card
        names each network by it, and registration picks the network of each
        image's modality (``register(..., modalities=...)``). Without names
        a shared network is modality-agnostic and two networks are chosen by
        the image's role.
    command : str, optional
        How the run was started, for the model card (default: this call, with
        the image paths, or their number and type, and every argument that is
        not a default).

    Returns
    -------
    pathlib.Path
        The model folder, usable as ``register(..., features=out)``.

    Raises
    ------
    ParameterError, InputImageError, PixelTypeError, GeometryError
        Bad inputs or settings (see :func:`~itk_suits.training.pairs.training_pairs`),
        or a checkpoint of another run.
    FileExistsError
        ``out`` holds a finished model (or an unfinished run with
        ``resume=False``) and ``overwrite`` is false.

    Notes
    -----
    Every loss is logged with the loss of constant features; their ratio
    (``training_log.csv``, ``loss.png``, the card's ``final_mean_ratio``)
    must fall clearly below 1, or the features learned nothing (the collapse minimum of the step loss, see :mod:`.losses`).
    Resuming with the device, torch version and CPU thread count of the
    interrupted run gives exactly the weights of an uninterrupted run.

    Examples
    --------
    >>> from itk_suits.training import folder_images, train_features
    >>> ct, ct_labels = folder_images("ct/images", "ct/labels")      # doctest: +SKIP
    >>> mr, mr_labels = folder_images("mr/images", "mr/labels")      # doctest: +SKIP
    >>> model = train_features(ct, ct_labels, mr, mr_labels, "ct_mr_model",
    ...                        spacing=1.5, slice_axis="y")            # doctest: +SKIP
    >>> result = itk_suits.register(ct_image, mr_image, features=model)  # doctest: +SKIP
    """
    arguments = dict(locals())
    check_output_folder(out, resume=resume, overwrite=overwrite)  # before reading any image
    _modality_names(shared, modalities)
    pairs = training_pairs(
        fixed_images, fixed_labels, moving_images, moving_labels, labels=labels, label_mapping=label_mapping,
        spacing=spacing, shape=shape, slice_axis=slice_axis, slices=slices, all_pairs=all_pairs, initial=initial,
    )
    data = {
        "fixed_images": len(fixed_images), "moving_images": len(moving_images), "pairs": len(pairs),
        "spacing_mm": spacing if spacing is not None else "as read", "shape": None if shape is None else list(shape),
        "slice_axis": slice_axis, "slices": slices if slice_axis is not None else None, "all_pairs": all_pairs,
        "labels": list(labels) if labels is not None else "every label found",
        "sdm_channels": int(pairs[0].fixed_sdm.shape[1]),
        "label_mapping": None if label_mapping is None else {str(k): v for k, v in label_mapping.items()},
        "initial": initial if initial is None or isinstance(initial, str) else type(initial).__name__,
    }
    return train_on_pairs(
        pairs, out, mode=mode, shared=shared, architecture=architecture, ndim=ndim, scales=scales, epochs=epochs,
        settings=settings,
        device=device, seed=seed, checkpoint_every=checkpoint_every, resume=resume, overwrite=overwrite,
        progress=progress, callback=callback, name=name, description=description, modalities=modalities,
        data=data, command=command or _call_text(arguments),
    )
