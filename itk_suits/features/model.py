"""The feature-model folder: ONNX networks, a JSON model card and optional torch weights.

A model folder holds::

    model.json     the model card (below)
    fixed.onnx     network for fixed images   } or one shared.onnx
    moving.onnx    network for moving images  } for both
    model.pt       optional torch weights (:func:`weights_dict`), for fine-tuning

The card (``model.json``) is a JSON object with the keys

``format`` (``"itk-suits-feature-model"``), ``format_version`` (1), ``name``,
``description``, ``ndim`` (2 or 3), ``channels`` (feature channels per
network), ``shared`` (one network for both modalities), ``modalities`` (what
the fixed and the moving network were trained on, e.g. ``{"fixed": "CT",
"moving": "MR"}``), ``files`` (ONNX file name per role), ``sha256`` (hex
digest per ONNX file), ``input_normalization`` (``{"method": "percentile",
"percentiles": [0.5, 99.5], "clip": [0, 1]}``, see
:func:`~itk_suits.features.cnn.normalize_intensities`), ``architecture``,
``onnx_opset``, ``onnx_max_abs_difference`` (onnxruntime against torch at
export), ``training`` (data, command, seeds, duration: free-form),
``benchmark`` (measured numbers: free-form, empty until measured),
``torch_weights`` (``"model.pt"`` or null) and ``itk_suits_version``.

Shipped models live in ``itk_suits/models/<name>/`` in this format
(:func:`shipped_model_dirs`).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from dataclasses import asdict, dataclass, field

import torch

from itk_suits.errors import ParameterError
from itk_suits.features.cnn import GROUPS, LAYERS, ROLES, FeaturePair

__all__ = [
    "CARD_NAME",
    "WEIGHTS_NAME",
    "ModelCard",
    "file_sha256",
    "feature_pair_from_weights",
    "load_torch_weights",
    "pretrained_model_dir",
    "read_model_card",
    "shipped_model_dirs",
    "verify_model_files",
    "weights_dict",
    "write_model_card",
]

CARD_NAME = "model.json"
WEIGHTS_NAME = "model.pt"
FORMAT = "itk-suits-feature-model"
FORMAT_VERSION = 1
#: Folder of the models shipped with the package.
MODELS_DIR = pathlib.Path(__file__).resolve().parent.parent / "models"
WEIGHTS_FORMAT = "itk-suits-feature-weights"
NO_PRETRAINED = (
    "no pretrained model is shipped in this version of itk-suits; use features='mind', "
    "or train a model (itk_suits.train_features) and pass its folder"
)

ARCHITECTURE = (
    "FeatureCNN (Blendowski & Heinrich 2019): convolutions (kernel, channels) "
    + " ".join(f"({k},{c})" for k, c in LAYERS)
    + f", replicate 'same' padding, GroupNorm({GROUPS}) + tanh after the first six, "
    "bias on the last only"
)


@dataclass
class ModelCard:
    """The contents of ``model.json`` (see the module docstring for each key)."""

    name: str
    ndim: int
    channels: int
    shared: bool
    files: dict
    sha256: dict
    input_normalization: dict
    modalities: dict = field(default_factory=lambda: {"fixed": "unspecified", "moving": "unspecified"})
    description: str = ""
    architecture: str = ARCHITECTURE
    onnx_opset: int | None = None
    onnx_max_abs_difference: float | None = None
    training: dict = field(default_factory=dict)
    benchmark: dict = field(default_factory=dict)
    torch_weights: str | None = None
    itk_suits_version: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_dict(self):
        """The card as a JSON-ready dict."""
        return asdict(self)

    @property
    def percentiles(self):
        """The input normalisation percentiles ``(low, high)`` in %."""
        return tuple(float(p) for p in self.input_normalization["percentiles"])


def file_sha256(path):
    """Hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _card_error(directory, problem):
    return ParameterError(f"feature model {os.fspath(directory)!r}: {problem}")


def read_model_card(directory):
    """Read and check the card of a model folder.

    Parameters
    ----------
    directory : str or os.PathLike
        The model folder.

    Returns
    -------
    ModelCard

    Raises
    ------
    ParameterError
        No such folder, no ``model.json``, invalid JSON, another format, missing
        or invalid keys (dimension, channels, files for both modalities,
        normalisation).
    """
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise _card_error(directory, "no such folder")
    path = directory / CARD_NAME
    if not path.is_file():
        raise _card_error(
            directory,
            f"missing {CARD_NAME}; a model folder holds {CARD_NAME} and its ONNX files "
            "(write one with itk_suits.features.export_onnx or `itk-suits export`)",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _card_error(directory, f"{CARD_NAME} is not readable JSON ({error})") from error
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _card_error(directory, f"{CARD_NAME} is not an itk-suits feature model card (format {FORMAT!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise _card_error(
            directory,
            f"card format version {data.get('format_version')!r} is not supported (this itk-suits reads "
            f"version {FORMAT_VERSION}); upgrade itk-suits or re-export the model",
        )
    known = set(ModelCard.__dataclass_fields__)
    try:
        card = ModelCard(**{key: value for key, value in data.items() if key in known})
    except TypeError as error:
        raise _card_error(directory, f"{CARD_NAME} lacks a required key ({error})") from error
    _check_card(card, directory)
    return card


def _check_card(card, directory):
    if card.ndim not in (2, 3):
        raise _card_error(directory, f"ndim must be 2 or 3 in {CARD_NAME}, got {card.ndim!r}")
    if not isinstance(card.channels, int) or card.channels < 1:
        raise _card_error(directory, f"channels must be a positive integer in {CARD_NAME}, got {card.channels!r}")
    if not isinstance(card.files, dict) or not isinstance(card.sha256, dict):
        raise _card_error(directory, f"files and sha256 must be JSON objects in {CARD_NAME}")
    missing = [m for m in ROLES if not isinstance(card.files.get(m), str)]
    if missing:
        raise _card_error(directory, f"{CARD_NAME} names no ONNX file for {' and '.join(missing)} images")
    normalization = card.input_normalization
    if (
        not isinstance(normalization, dict)
        or normalization.get("method") != "percentile"
        or not isinstance(normalization.get("percentiles"), list)
        or len(normalization["percentiles"]) != 2
    ):
        raise _card_error(
            directory,
            f"unsupported input_normalization {normalization!r}; expected "
            "{'method': 'percentile', 'percentiles': [low, high], 'clip': [0, 1]}",
        )


def verify_model_files(directory, card):
    """Check that every ONNX file of a card exists and has its recorded SHA-256.

    Parameters
    ----------
    directory : str or os.PathLike
        The model folder.
    card : ModelCard
        Its card.

    Returns
    -------
    dict
        Modality to the absolute path of its ONNX file.

    Raises
    ------
    ParameterError
        A file is missing, has no recorded digest, or its digest differs (a
        corrupted or replaced file).
    """
    directory = pathlib.Path(directory)
    paths = {}
    for role in ROLES:
        name = card.files[role]
        path = directory / name
        if not path.is_file():
            raise _card_error(directory, f"missing {name} (the {role} network named in {CARD_NAME})")
        expected = card.sha256.get(name)
        if not expected:
            raise _card_error(directory, f"{CARD_NAME} records no sha256 for {name}")
        actual = file_sha256(path)
        if actual != expected:
            raise _card_error(
                directory,
                f"{name} is corrupted or was replaced: its sha256 is {actual}, the card records "
                f"{expected}; copy the model folder again or re-export it",
            )
        paths[role] = str(path.resolve())
    return paths


def write_model_card(card, directory):
    """Write ``card`` as ``model.json`` in ``directory`` (created if needed); returns its path."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CARD_NAME
    path.write_text(json.dumps(card.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def shipped_model_dirs(root=MODELS_DIR):
    """Model folders shipped with the package (each ``<root>/<name>/model.json``), sorted by name."""
    root = pathlib.Path(root)
    if not root.is_dir():
        return []
    return sorted(path.parent for path in root.glob(f"*/{CARD_NAME}"))


def pretrained_model_dir(ndim, root=MODELS_DIR):
    """The shipped model folder for ``ndim``-dimensional images.

    The first shipped model (by folder name) whose card has this dimension.

    Raises
    ------
    ParameterError
        No model is shipped, or none for this dimension.
    """
    folders = shipped_model_dirs(root)
    if not folders:
        raise ParameterError(NO_PRETRAINED)
    for folder in folders:
        if read_model_card(folder).ndim == ndim:
            return folder
    raise ParameterError(
        f"no pretrained {ndim}D model is shipped (shipped: {', '.join(f.name for f in folders)}); "
        "use features='mind' or a model folder of your own"
    )


def weights_dict(pair, **card_fields):
    """The torch weights of a :class:`FeaturePair` as a dict for ``torch.save`` (``model.pt``).

    Parameters
    ----------
    pair : FeaturePair
        The networks.
    **card_fields
        Card entries to carry into an exported folder (``name``,
        ``description``, ``modalities``, ``training``, ``benchmark``).

    Returns
    -------
    dict
        ``{"format", "ndim", "shared", "percentiles", "state_dict", "card"}``;
        loadable with ``torch.load(..., weights_only=True)``. A training
        checkpoint may hold it under the key ``"model"``.
    """
    return {
        "format": WEIGHTS_FORMAT,
        "ndim": pair.ndim,
        "shared": pair.shared,
        "percentiles": list(pair.percentiles),
        "state_dict": {key: value.detach().cpu() for key, value in pair.state_dict().items()},
        "card": dict(card_fields),
    }


def feature_pair_from_weights(weights, source="weights"):
    """Rebuild a :class:`FeaturePair` from :func:`weights_dict` output.

    Parameters
    ----------
    weights : dict
        As written by :func:`weights_dict`, or a checkpoint holding it under ``"model"``.
    source : str
        Where the weights come from, for error messages.

    Returns
    -------
    pair : FeaturePair
        In evaluation mode, on the CPU.
    card_fields : dict
        The card entries stored with the weights.

    Raises
    ------
    ParameterError
        Not itk-suits feature weights, or weights that do not fit the network.
    """
    if isinstance(weights, dict) and weights.get("format") != WEIGHTS_FORMAT and isinstance(
        weights.get("model"), dict
    ):
        weights = weights["model"]
    if not isinstance(weights, dict) or weights.get("format") != WEIGHTS_FORMAT:
        raise ParameterError(
            f"{source} holds no itk-suits feature weights (a dict with format {WEIGHTS_FORMAT!r}, "
            "or a checkpoint with one under 'model')"
        )
    try:
        pair = FeaturePair(weights["ndim"], shared=weights["shared"], percentiles=weights["percentiles"])
        pair.load_state_dict(weights["state_dict"])
    except (KeyError, RuntimeError, TypeError) as error:
        raise ParameterError(f"{source}: the weights do not fit the feature network ({error})") from error
    return pair.eval(), dict(weights.get("card", {}))


def load_torch_weights(path):
    """Read ``model.pt`` or a training checkpoint; see :func:`feature_pair_from_weights`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ParameterError(f"no torch weights file at {path!r}")
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors alike
        raise ParameterError(f"{path!r} is not a readable torch weights file ({error})") from error
    return feature_pair_from_weights(weights, source=repr(path))
