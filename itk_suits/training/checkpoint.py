"""Training checkpoints: the state of a run in its model folder, and resuming it.

A run writes ``checkpoint.pt`` into its output folder after every scale and
every few feature updates (:func:`save_checkpoint`, written to a temporary
file first, so an interruption never leaves half a checkpoint). It is a dict
that ``torch.load(..., weights_only=True)`` reads:

``format`` (``"itk-suits-training-checkpoint"``), ``format_version`` (1),
``finished`` (every update done), ``model`` (the networks as
:func:`~itk_suits.features.model.weights_dict`, the key ``itk-suits export``
reads), ``run`` (what must be equal to resume: the training settings, the
network's dimension and sharing, a fingerprint of the training data), and the
keys of :meth:`FeatureTrainer.state_dict
<itk_suits.training.trainer.FeatureTrainer.state_dict>`: the feature optimizer,
the history, the position reached (``epoch``, ``scale``, ``batch``,
``update``), the pairs' control grids and grid-optimizer moments, the
presentation scheme of the current scale and the numpy and torch random
states.

:func:`check_output_folder` decides what a run may do with a folder: start
afresh, resume its checkpoint, or stop because it holds a finished model.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib

import torch

from itk_suits.errors import ParameterError
from itk_suits.features.model import CARD_NAME, WEIGHTS_NAME, read_model_card, weights_dict

__all__ = [
    "CHECKPOINT_NAME",
    "OUTPUT_FILES",
    "check_output_folder",
    "clear_output_folder",
    "data_fingerprint",
    "load_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "itk-suits-training-checkpoint"
FORMAT_VERSION = 1
#: The files a training run writes into its folder (and ``overwrite`` removes).
OUTPUT_FILES = (
    CHECKPOINT_NAME, CARD_NAME, WEIGHTS_NAME, "fixed.onnx", "moving.onnx", "shared.onnx",
    "training_log.csv", "loss.png",
)


#: Entries of a run's description added after checkpoints were first written, with the value they had before.
ADDED_RUN_ENTRIES = {"settings": {"step_weight": 0.0}, "network": {"architecture": "featurecnn"}}


def _plain(value):
    """``value`` as JSON values (tuples become lists), so saved and current runs compare equal."""
    return json.loads(json.dumps(value))


def data_fingerprint(pairs) -> dict:
    """Summary and SHA-256 of the training pairs' tensors, to recognise the data of a run.

    Returns
    -------
    dict
        ``pairs`` (count), ``shapes`` (distinct spatial sizes, array order),
        ``sdm_channels`` and ``sha256`` (of every tensor's shape and float32
        values, in pair order).
    """
    digest = hashlib.sha256()
    shapes = []
    for pair in pairs:
        for tensor in (pair.fixed, pair.moving, pair.fixed_sdm, pair.moving_sdm):
            array = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
            digest.update(repr(array.shape).encode())
            digest.update(array.tobytes())
        shape = list(pair.fixed.shape[2:])
        if shape not in shapes:
            shapes.append(shape)
    return {
        "pairs": len(pairs),
        "shapes": shapes,
        "sdm_channels": int(pairs[0].fixed_sdm.shape[1]) if pairs else 0,
        "sha256": digest.hexdigest(),
    }


def save_checkpoint(directory, trainer, run: dict, **card_fields) -> pathlib.Path:
    """Write ``checkpoint.pt`` for the current state of ``trainer``.

    Parameters
    ----------
    directory : path-like
        The run's output folder (created if needed).
    trainer : FeatureTrainer
        The trainer, between two feature updates (e.g. in its callback).
    run : dict
        What a resumed run must match (JSON values), see :func:`restore_checkpoint`.
    **card_fields
        Stored with the weights (:func:`~itk_suits.features.model.weights_dict`).

    Returns
    -------
    pathlib.Path
        The checkpoint file.
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = trainer.state_dict()
    state.update(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        finished=trainer.finished,
        model=weights_dict(trainer.networks, **card_fields),
        run=_plain(run),
    )
    path = directory / CHECKPOINT_NAME
    temporary = directory / (CHECKPOINT_NAME + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)
    return path


def load_checkpoint(path) -> dict:
    """Read a ``checkpoint.pt`` (on the CPU).

    Raises
    ------
    ParameterError
        Not a readable itk-suits training checkpoint, or of another format version.
    """
    path = os.fspath(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors alike
        raise ParameterError(
            f"{path!r} is not a readable training checkpoint ({error}); pass overwrite=True to start again"
        ) from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ParameterError(f"{path!r} is not an itk-suits training checkpoint")
    if checkpoint.get("format_version") != FORMAT_VERSION:
        raise ParameterError(
            f"{path!r} has checkpoint format version {checkpoint.get('format_version')!r}; this itk-suits "
            f"resumes version {FORMAT_VERSION} only (pass overwrite=True to start again)"
        )
    return checkpoint


def _differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted names of the entries that differ between two nested dicts."""
    differing = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            differing += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            differing.append(f"{prefix}{key} ({a!r} saved, {b!r} now)")
    return differing


def restore_checkpoint(checkpoint: dict, trainer, run: dict, source: str = CHECKPOINT_NAME) -> None:
    """Load a checkpoint into ``trainer`` (networks and training state), after checking it fits.

    Parameters
    ----------
    checkpoint : dict
        From :func:`load_checkpoint`.
    trainer : FeatureTrainer
        A trainer built with the same settings, networks and pairs.
    run : dict
        The current run's description, as given to :func:`save_checkpoint`.
    source : str
        Where the checkpoint comes from, for messages.

    Raises
    ------
    ParameterError
        The run differs (settings, network, data): the message names each
        difference.
    """
    saved = {key: {**ADDED_RUN_ENTRIES[key], **value} if key in ADDED_RUN_ENTRIES and isinstance(value, dict)
             else value for key, value in checkpoint["run"].items()}
    differing = _differences(saved, _plain(run))
    if differing:
        shown = "; ".join(differing[:6]) + (f"; and {len(differing) - 6} more" if len(differing) > 6 else "")
        raise ParameterError(
            f"{source} was written by a run with other settings or data: {shown}. Resume with the settings "
            "and data it was started with, or pass overwrite=True to start again"
        )
    trainer.networks.load_state_dict(checkpoint["model"]["state_dict"])
    trainer.load_state_dict(checkpoint)


def check_output_folder(directory, *, resume: bool, overwrite: bool) -> pathlib.Path | None:
    """What a training run may do with ``directory``; nothing is changed.

    Returns
    -------
    pathlib.Path or None
        The checkpoint to resume from, or None for a fresh run (a new or
        empty folder, or ``overwrite``).

    Raises
    ------
    FileExistsError
        ``directory`` is a file; or, without ``overwrite``: it holds a
        finished model (``model.json``), an unfinished run while ``resume``
        is false, or other training outputs without a checkpoint.
    """
    directory = pathlib.Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"output {os.fspath(directory)!r} is a file, not a folder; choose a folder")
    if overwrite or not directory.is_dir():
        return None
    if (directory / CARD_NAME).is_file():
        raise FileExistsError(
            f"{os.fspath(directory)!r} holds a finished model ({CARD_NAME}); pass overwrite=True (--overwrite) "
            "to train it again, or choose another folder"
        )
    checkpoint = directory / CHECKPOINT_NAME
    if checkpoint.is_file():
        if resume:
            return checkpoint
        raise FileExistsError(
            f"{os.fspath(directory)!r} holds an unfinished training run ({CHECKPOINT_NAME}); pass resume=True "
            "to continue it, or overwrite=True (--overwrite) to start again"
        )
    present = [name for name in OUTPUT_FILES if (directory / name).exists()]
    if present:
        raise FileExistsError(
            f"{os.fspath(directory)!r} holds {', '.join(present)} but no {CHECKPOINT_NAME}; pass overwrite=True "
            "(--overwrite) to replace them, or choose another folder"
        )
    return None


def clear_output_folder(directory) -> None:
    """Remove the files of :data:`OUTPUT_FILES` and the ONNX files its card names from ``directory``
    (other files stay)."""
    directory = pathlib.Path(directory)
    try:
        named = tuple(read_model_card(directory).files)
    except ParameterError:  # no card, or one that cannot be read: only the usual names go
        named = ()
    for name in OUTPUT_FILES + named + (CHECKPOINT_NAME + ".tmp",):
        path = directory / name
        if path.is_file():
            path.unlink()
