"""The feature-model folder: ONNX networks, a JSON model card and optional torch weights.

A model folder holds::

    model.json     the model card (below)
    ct.onnx        one network per modality (here "ct" and "mr"),  } or one
    mr.onnx        named by the card                                } shared.onnx
    model.pt       optional torch weights (:func:`weights_dict`), for fine-tuning

The card (``model.json``) is a JSON object with the keys

``format`` (``"itk-suits-feature-model"``), ``format_version`` (2), ``name``,
``description``, ``ndim`` (2 or 3), ``channels`` (feature channels per
network), ``shared`` (one network for every image), ``networks`` (the ONNX
file of each modality the model knows, e.g. ``{"ct": "ct.onnx", "mr":
"mr.onnx"}``; ``"any"`` names a modality-agnostic network, several
modalities may share one file), ``roles`` (``{"fixed": file, "moving":
file}`` for networks trained for the fixed and the moving image of a pair
without modality names, else null), ``sha256`` (hex digest per ONNX file),
``input_normalization`` (``{"method": "percentile", "percentiles": [0.5,
99.5], "clip": [0, 1]}``, see
:func:`~itk_suits.features.cnn.normalize_intensities`), ``architecture``,
``onnx_opset``, ``onnx_max_abs_difference`` (onnxruntime against torch at
export), ``training`` (data, command, seeds, duration: free-form),
``benchmark`` (measured numbers: free-form, empty until measured),
``registration_defaults`` (optional: ``{"fixed,moving": features}``, e.g.
``{"mr,ct": "mind+suits-abdomen-2d"}``, the features ``register`` runs by
default when the caller names these modalities, the combination measured
best for them; pairs not listed run MIND-SSC, see
:func:`~itk_suits.features.resolved_features`), ``torch_weights``
(``"model.pt"`` or null) and ``itk_suits_version``.

Modality names are short lowercase words (``"ct"``, ``"mr"``, ``"t1"``);
they describe the images, whatever their role in a registration. Which
network describes an image (:func:`select_network`):

* a model with one network (``"any"``, or one file for all its modalities)
  uses it for every image; a modality the caller names must be one of the
  card's, unless the network is ``"any"``;
* a model with one network per modality needs the image's modality
  (``register(..., modalities=("mr", "ct"))``, ``extract_features(...,
  modality="ct")``) and refuses an image without one;
* a model keyed by role (``roles``) uses the fixed network for fixed images
  and the moving one for moving images, and refuses modality names.

Cards of format version 1 (``files`` and ``modalities`` keyed by role) are
read as follows: one file for both roles is a modality-agnostic network
(``"any"``); two files keep being chosen by role, and when the card's
``modalities`` give the two roles two different modality names (e.g.
``{"fixed": "CT", "moving": "MR"}``), those names select them too.

Shipped models live in ``itk_suits/models/<name>/`` in this format
(:func:`shipped_model_dirs`); a shipped model can be named by its folder name.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
from dataclasses import asdict, dataclass, field

import torch

from itk_suits.errors import ModalityError, ParameterError
from itk_suits.features.cnn import ROLES, FeatureCNN, FeaturePair

__all__ = [
    "ANY_MODALITY",
    "CARD_NAME",
    "WEIGHTS_NAME",
    "ModelCard",
    "card_networks",
    "checked_modalities",
    "checked_modality",
    "file_sha256",
    "feature_pair_from_weights",
    "load_torch_weights",
    "pretrained_model_dir",
    "read_model_card",
    "select_network",
    "shipped_model_dir",
    "shipped_model_dirs",
    "trained_modalities",
    "verify_model_files",
    "weights_dict",
    "write_model_card",
]

CARD_NAME = "model.json"
WEIGHTS_NAME = "model.pt"
FORMAT = "itk-suits-feature-model"
FORMAT_VERSION = 2
#: Card versions this itk-suits reads (version 1 keys its networks by role).
READ_VERSIONS = (1, FORMAT_VERSION)
#: Folder of the models shipped with the package.
MODELS_DIR = pathlib.Path(__file__).resolve().parent.parent / "models"
WEIGHTS_FORMAT = "itk-suits-feature-weights"
NO_PRETRAINED = (
    "no pretrained model is shipped in this version of itk-suits; use features='mind', "
    "or train a model (itk_suits.train_features) and pass its folder"
)
#: The modality of a network that describes images of any modality.
ANY_MODALITY = "any"
_MODALITY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
#: How a version-1 card or a checkpoint says that the modalities were not named.
_UNNAMED = "unspecified"

def checked_modality(name, what="modality"):
    """A modality name, lowercased.

    Parameters
    ----------
    name : str
        E.g. ``"CT"``, ``"mr"``, ``"t2"``: a letter or digit, then up to 31
        letters, digits, ``_`` or ``-`` (case-insensitive).
    what : str
        The argument's name, for the message.

    Returns
    -------
    str

    Raises
    ------
    ModalityError
        Not a string, or not such a word.
    """
    text = name.strip().lower() if isinstance(name, str) else None
    if text is None or not _MODALITY_NAME.fullmatch(text):
        raise ModalityError(
            f"{what} must be a modality name such as 'ct', 'mr' or 't1' (letters, digits, '_' or '-'), "
            f"got {name!r}"
        )
    return text


def checked_modalities(modalities, what="modalities"):
    """The modalities of the fixed and the moving image, checked.

    Parameters
    ----------
    modalities : None, (str, str) or {"fixed": str, "moving": str}
        The modality of the fixed image, then the moving one (e.g.
        ``("mr", "ct")``), or a dict by role.
    what : str
        The argument's name, for the message.

    Returns
    -------
    tuple of str or None
        ``(fixed, moving)``, lowercased; ``None`` when none are given.

    Raises
    ------
    ModalityError
        A single string, not two names, or a malformed name.
    """
    if modalities is None:
        return None
    if isinstance(modalities, dict):
        if set(modalities) != set(ROLES):
            raise ModalityError(f"{what} as a dict needs the keys 'fixed' and 'moving', got {sorted(modalities)}")
        modalities = tuple(modalities[role] for role in ROLES)
    if isinstance(modalities, (str, bytes)) or not isinstance(modalities, (tuple, list)) or len(modalities) != 2:
        raise ModalityError(
            f"{what} must name the modality of the fixed and of the moving image, e.g. ('mr', 'ct'), "
            f"got {modalities!r}"
        )
    return tuple(checked_modality(name, f"{what}[{index}] ({role} image)")
                 for index, (role, name) in enumerate(zip(ROLES, modalities)))


def select_network(networks, roles, role, modality, source):
    """The network (a key of ``networks`` or ``roles``' value) that describes one image.

    Parameters
    ----------
    networks : dict
        Modality name to network (file name, or any other key).
    roles : dict or None
        Role to network, for models trained for fixed and moving images
        without modality names.
    role : {"fixed", "moving"}
        The image's role in the registration.
    modality : str or None
        The image's modality as the caller named it (checked with
        :func:`checked_modality`), or ``None``.
    source : str
        The model as the caller named it, for messages.

    Returns
    -------
    object
        The value of ``networks`` or ``roles`` that describes the image.

    Raises
    ------
    ModalityError
        The model has no network for ``modality``; it has one network per
        modality and ``modality`` is ``None``; or its networks go by role and
        a modality is named.
    """
    distinct = set(networks.values()) | set((roles or {}).values())
    if modality is None:
        if len(distinct) == 1:
            return next(iter(distinct))
        if roles:
            return roles[role]
        known = sorted(networks)
        raise ModalityError(
            f"feature model {source!r} has one network per modality ({', '.join(known)}) and cannot tell "
            f"which describes the {role} image: name the modalities of the images, e.g. "
            f"register(..., modalities=({known[0]!r}, {known[-1]!r})) for a {known[0]} fixed and a "
            f"{known[-1]} moving image, extract_features(..., modality={known[0]!r}), or --modalities / "
            "--modality on the command line"
        )
    modality = checked_modality(modality)
    if modality in networks:
        return networks[modality]
    if ANY_MODALITY in networks:
        return networks[ANY_MODALITY]
    if not networks:
        raise ModalityError(
            f"feature model {source!r} names no modalities: its networks were trained for the fixed and "
            f"the moving image of a pair and are chosen by the image's role, so modality {modality!r} "
            "cannot be checked; leave the modalities out, or re-export the model naming them "
            "(export_onnx(..., modalities=(FIXED, MOVING)))"
        )
    raise ModalityError(
        f"feature model {source!r} has no network for modality {modality!r} (the {role} image); it knows "
        f"{', '.join(sorted(networks))}: name one of those, or use features='mind' (modality-independent)"
    )


def trained_modalities(modalities):
    """The modalities a pair of networks was trained on, as :func:`checked_modalities` gives them.

    ``"unspecified"`` for both roles (what cards of format version 1 and
    older checkpoints record when no names were given) is ``None``.
    """
    if isinstance(modalities, dict) and modalities and all(
            str(value).strip().lower() == _UNNAMED for value in modalities.values()):
        return None
    return checked_modalities(modalities)


def card_networks(shared, names=None):
    """What a card records for a pair of networks, and the file each role's network is written to.

    Parameters
    ----------
    shared : bool
        One network for both roles.
    names : (str, str) or None
        The modality of the training images of the fixed and of the moving
        network (checked, e.g. by :func:`trained_modalities`); ``None``: not named.

    Returns
    -------
    networks : dict
        Modality to ONNX file: ``{"any": "shared.onnx"}`` for a shared network
        without names, ``{name: "shared.onnx", ...}`` for a named one,
        ``{fixed_name: "<name>.onnx", moving_name: "<name>.onnx"}`` for two
        named networks, ``{}`` for two unnamed ones.
    roles : dict or None
        ``{"fixed": "fixed.onnx", "moving": "moving.onnx"}`` for two unnamed
        networks, else ``None``.
    files : dict
        Role to the ONNX file its network is written to.

    Raises
    ------
    ModalityError
        The same name for two networks, or ``"any"`` for one of two networks.
    """
    if shared:
        files = {role: "shared.onnx" for role in ROLES}
        return {name: "shared.onnx" for name in (names or (ANY_MODALITY,))}, None, files
    if names is None:
        files = {role: f"{role}.onnx" for role in ROLES}
        return {}, dict(files), files
    if names[0] == names[1] or ANY_MODALITY in names:
        raise ModalityError(
            f"two networks need two different modality names other than {ANY_MODALITY!r}, got {names}; "
            "train one shared network for a modality-agnostic model"
        )
    files = {role: f"{name}.onnx" for role, name in zip(ROLES, names)}
    return dict(zip(names, files.values())), None, files


@dataclass
class ModelCard:
    """The contents of ``model.json`` (see the module docstring for each key)."""

    name: str
    ndim: int
    channels: int
    shared: bool
    networks: dict
    sha256: dict
    input_normalization: dict
    roles: dict | None = None
    description: str = ""
    architecture: str = FeatureCNN.description
    onnx_opset: int | None = None
    onnx_max_abs_difference: float | None = None
    training: dict = field(default_factory=dict)
    benchmark: dict = field(default_factory=dict)
    registration_defaults: dict = field(default_factory=dict)
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

    @property
    def files(self):
        """The ONNX file names of the model, sorted."""
        return sorted(set(self.networks.values()) | set((self.roles or {}).values()))

    @property
    def modalities(self):
        """The modality names the model knows, sorted (``["any"]``: every modality; ``[]``: chosen by role)."""
        return sorted(self.networks)

    def network_file(self, role, modality=None, source=None):
        """The ONNX file that describes an image of this role and modality (see :func:`select_network`).

        Parameters
        ----------
        role : {"fixed", "moving"}
        modality : str, optional
        source : str, optional
            The model as the caller named it (default: the card's name).

        Returns
        -------
        str
            An ONNX file name of the card.

        Raises
        ------
        ModalityError
            As :func:`select_network`.
        """
        return select_network(self.networks, self.roles, role, modality, source or self.name)


def file_sha256(path):
    """Hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _card_error(directory, problem):
    return ParameterError(f"feature model {os.fspath(directory)!r}: {problem}")


def _from_version_1(data, directory):
    """A version-1 card (``files`` and ``modalities`` keyed by role) in the terms of version 2."""
    files, described = data.pop("files", None), data.pop("modalities", None)
    if not isinstance(files, dict) or not all(isinstance(files.get(role), str) for role in ROLES):
        raise _card_error(directory, f"{CARD_NAME} (format version 1) names no ONNX file for fixed and moving images")
    names = [str(described.get(role, "")).strip().lower() for role in ROLES] if isinstance(described, dict) else []
    named = len(set(names)) == 2 and all(_MODALITY_NAME.fullmatch(name) for name in names) \
        and ANY_MODALITY not in names and _UNNAMED not in names
    if files["fixed"] == files["moving"]:
        data["networks"] = {ANY_MODALITY: files["fixed"]}
    else:
        data["networks"] = {name: files[role] for role, name in zip(ROLES, names)} if named else {}
        data["roles"] = {role: files[role] for role in ROLES}
    return data


def read_model_card(directory):
    """Read and check the card of a model folder (format version 2, or 1 read as described above).

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
        or invalid keys (dimension, channels, networks and their modality
        names, normalisation).
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
    if data.get("format_version") not in READ_VERSIONS:
        raise _card_error(
            directory,
            f"card format version {data.get('format_version')!r} is not supported (this itk-suits reads "
            f"versions {', '.join(map(str, READ_VERSIONS))}); upgrade itk-suits or re-export the model",
        )
    if data["format_version"] == 1:
        data = _from_version_1(dict(data, format_version=FORMAT_VERSION), directory)
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
    if not isinstance(card.networks, dict) or not isinstance(card.sha256, dict):
        raise _card_error(directory, f"networks and sha256 must be JSON objects in {CARD_NAME}")
    bad = [name for name, file in card.networks.items()
           if not (isinstance(name, str) and _MODALITY_NAME.fullmatch(name) and isinstance(file, str))]
    if bad:
        raise _card_error(directory, f"networks in {CARD_NAME} must map lowercase modality names to ONNX "
                                     f"file names; {bad} do not")
    if card.roles is not None and not (
            isinstance(card.roles, dict) and all(isinstance(card.roles.get(role), str) for role in ROLES)):
        raise _card_error(directory, f"roles in {CARD_NAME} must be null or name an ONNX file for fixed and moving")
    defaults = card.registration_defaults
    if not isinstance(defaults, dict) or not all(
            isinstance(key, str) and len(key.split(",")) == 2 and isinstance(value, str) and value
            for key, value in defaults.items()):
        raise _card_error(directory, f"registration_defaults in {CARD_NAME} must map 'fixed,moving' modality "
                                     f"names to features, got {defaults!r}")
    if not card.networks and card.roles is None:
        raise _card_error(directory, f"{CARD_NAME} names no network (networks is empty and roles null)")
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
        ONNX file name (as in the card) to its absolute path.

    Raises
    ------
    ParameterError
        A file is missing, has no recorded digest, or its digest differs (a
        corrupted or replaced file).
    """
    directory = pathlib.Path(directory)
    paths = {}
    for name in card.files:
        path = directory / name
        if not path.is_file():
            raise _card_error(directory, f"missing {name} (a network named in {CARD_NAME})")
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
        paths[name] = str(path.resolve())
    return paths


def write_model_card(card, directory):
    """Write ``card`` as ``model.json`` in ``directory`` (created if needed); returns its path."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CARD_NAME
    path.write_text(json.dumps(card.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def shipped_model_dirs(root=None):
    """Model folders shipped with the package (each ``<root>/<name>/model.json``), sorted by name.

    ``root`` defaults to ``itk_suits/models/``.
    """
    root = pathlib.Path(MODELS_DIR if root is None else root)
    if not root.is_dir():
        return []
    return sorted(path.parent for path in root.glob(f"*/{CARD_NAME}"))


def shipped_model_dir(name, root=None):
    """The shipped model folder called ``name`` (case-insensitive), or ``None``.

    Parameters
    ----------
    name : str
        A folder name under ``root``, e.g. ``"suits-synth-2d"``.
    root : str or os.PathLike, optional
        Folder of the shipped models (default ``itk_suits/models/``).

    Returns
    -------
    pathlib.Path or None
    """
    for folder in shipped_model_dirs(root):
        if folder.name.lower() == name.lower():
            return folder
    return None


def pretrained_model_dir(ndim, root=None):
    """The shipped model folder for ``ndim``-dimensional images.

    The first shipped model (by folder name) of this dimension that describes
    images of any modality (one ``"any"`` network); failing that, the first of
    this dimension.

    Raises
    ------
    ParameterError
        No model is shipped, or none for this dimension.
    """
    folders = shipped_model_dirs(root)
    if not folders:
        raise ParameterError(NO_PRETRAINED)
    of_dimension = [folder for folder in folders if read_model_card(folder).ndim == ndim]
    for folder in of_dimension:
        if ANY_MODALITY in read_model_card(folder).networks:
            return folder
    if of_dimension:
        return of_dimension[0]
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
        ``{"format", "ndim", "shared", "architecture", "percentiles", "state_dict", "card"}``;
        loadable with ``torch.load(..., weights_only=True)``. A training
        checkpoint may hold it under the key ``"model"``.
    """
    return {
        "format": WEIGHTS_FORMAT,
        "ndim": pair.ndim,
        "shared": pair.shared,
        "architecture": pair.architecture,
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
        # weights written before the architecture was recorded are FeatureCNNs
        pair = FeaturePair(weights["ndim"], shared=weights["shared"], percentiles=weights["percentiles"],
                           architecture=weights.get("architecture", "featurecnn"))
        pair.load_state_dict(weights["state_dict"])
    except (KeyError, RuntimeError, TypeError, ParameterError) as error:
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
