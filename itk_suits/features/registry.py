"""Feature extractors: the feature spaces registration compares images in.

:func:`get_feature_extractor` turns what a user passes as ``features`` into a
:class:`FeatureExtractor`: a built-in name (``"mind"``, ``"intensity"``),
``"pretrained"`` (the model shipped in ``itk_suits/models/``), the path of a
model folder (run with onnxruntime), several of these joined by ``"+"`` (their
channels concatenated, e.g. ``"mind+my_model/"``), an in-memory
:class:`~itk_suits.features.cnn.FeaturePair`, or an extractor object.

Model folders are opened with :mod:`itk_suits.features.onnx`, imported only
when one is asked for.
"""

import os

import torch

from itk_suits.errors import ParameterError
from itk_suits.features.base import FeatureExtractor
from itk_suits.features.cnn import ROLES, FeaturePair, check_role, normalize_intensities
from itk_suits.features.mind import mind_ssc
from itk_suits.features.model import (
    ANY_MODALITY,
    NO_PRETRAINED,
    pretrained_model_dir,
    read_model_card,
    select_network,
    shipped_model_dir,
    shipped_model_dirs,
)


def _check_ndim(ndim):
    if ndim not in (2, 3):
        raise ParameterError(f"ndim must be 2 or 3, got {ndim!r}")


class MindFeatures(FeatureExtractor):
    """MIND-SSC self-similarity descriptor with its default parameters (multi-modal).

    6 channels in 2D, 12 in 3D, values in (0, 1]; see :func:`mind_ssc`. The same
    for both modalities.
    """

    name = "mind"

    def channels(self, ndim):
        _check_ndim(ndim)
        return 6 if ndim == 2 else 12

    def __call__(self, image, role="fixed", modality=None):
        check_role(role)
        return mind_ssc(image)


class IntensityFeatures(FeatureExtractor):
    """The image itself, robustly scaled to [0, 1] (mono-modal pairs).

    Each batch item is mapped linearly so that its 0.5th percentile becomes 0 and its
    99.5th percentile 1 (nearest-rank percentiles), then clipped to [0, 1] (see
    :func:`~itk_suits.features.cnn.normalize_intensities`). An image whose two
    percentiles coincide becomes all zeros. One channel, the same for both modalities.
    """

    name = "intensity"

    def channels(self, ndim):
        _check_ndim(ndim)
        return 1

    def __call__(self, image, role="fixed", modality=None):
        check_role(role)
        return normalize_intensities(image)


class ConcatenatedFeatures(FeatureExtractor):
    """The channels of several extractors side by side (e.g. MIND and learned ones).

    Parameters
    ----------
    extractors : sequence of FeatureExtractor
        In channel order.

    Notes
    -----
    The parts keep their own value ranges (MIND in (0, 1], learned features
    unbounded). The descent step is scale-invariant per channel, but its
    confidence floor is a fraction of the mean gradient energy of all channels,
    so a part with much stronger gradients raises the floor of the others.
    """

    def __init__(self, extractors):
        self.extractors = tuple(extractors)
        if len(self.extractors) < 2:
            raise ParameterError("concatenated features need at least two extractors, e.g. 'mind+my_model/'")
        self.name = "+".join(extractor.name for extractor in self.extractors)

    def channels(self, ndim):
        return sum(extractor.channels(ndim) for extractor in self.extractors)

    def check_modality(self, role, modality, ndim=None):
        for extractor in self.extractors:
            extractor.check_modality(role, modality, ndim)

    def __call__(self, image, role="fixed", modality=None):
        check_role(role)
        return torch.cat([extractor(image, role=role, modality=modality) for extractor in self.extractors], dim=1)


class TorchFeatureExtractor(FeatureExtractor):
    """Features from an in-memory :class:`~itk_suits.features.cnn.FeaturePair` (e.g. during training).

    The networks run on the device of their parameters; the features come back
    on the device of the image. Gradients flow when the caller enables them.
    A pair knows no modality names: a shared network describes every
    modality, two networks are chosen by the image's role and refuse a named
    modality (export the pair with its modalities to select by them).
    """

    name = "torch"

    def __init__(self, pair):
        if not isinstance(pair, FeaturePair):
            raise ParameterError(f"TorchFeatureExtractor needs a FeaturePair, got {type(pair).__name__}")
        self.pair = pair

    def channels(self, ndim):
        _check_ndim(ndim)
        if ndim != self.pair.ndim:
            raise ParameterError(f"the feature networks are {self.pair.ndim}D and cannot describe {ndim}D images")
        return self.pair.out_channels

    def check_modality(self, role, modality, ndim=None):
        check_role(role)
        if ndim is not None:
            self.channels(ndim)
        networks = {ANY_MODALITY: "shared"} if self.pair.shared else {}
        roles = None if self.pair.shared else {r: r for r in ROLES}
        select_network(networks, roles, role, modality, "in-memory FeaturePair")

    def __call__(self, image, role="fixed", modality=None):
        self.check_modality(role, modality)
        device = next(self.pair.parameters()).device
        return self.pair(image.to(device), role=role).to(image.device)


class PretrainedFeatures(FeatureExtractor):
    """The model shipped with itk-suits for the image dimension (see :func:`~itk_suits.features.model.pretrained_model_dir`).

    Parameters
    ----------
    root : str or os.PathLike
        Folder of the shipped models (default ``itk_suits/models/``).

    Raises
    ------
    ParameterError
        When no model is shipped.
    """

    name = "pretrained"

    def __init__(self, root=None):
        if not shipped_model_dirs(root):
            raise ParameterError(NO_PRETRAINED)
        self.root = root
        self._extractors = {}

    def _extractor(self, ndim):
        _check_ndim(ndim)
        if ndim not in self._extractors:
            from itk_suits.features.onnx import ONNXFeatureExtractor

            self._extractors[ndim] = ONNXFeatureExtractor(pretrained_model_dir(ndim, self.root))
        return self._extractors[ndim]

    def channels(self, ndim):
        return self._extractor(ndim).channels(ndim)

    def check_modality(self, role, modality, ndim=None):
        check_role(role)
        folders = shipped_model_dirs(self.root) if ndim is None else [pretrained_model_dir(ndim, self.root)]
        for folder in folders:
            read_model_card(folder).network_file(role, modality, source=f"pretrained ({folder.name})")

    def __call__(self, image, role="fixed", modality=None):
        return self._extractor(image.dim() - 2)(image, role=role, modality=modality)


_EXTRACTORS = {extractor.name: extractor for extractor in (MindFeatures, IntensityFeatures)}


def available_features():
    """Built-in feature names accepted by :func:`get_feature_extractor`, sorted.

    ``"pretrained"``, the names of shipped models (:func:`shipped_model_names`),
    model folders and ``"+"`` combinations are accepted too.

    Returns
    -------
    list of str
    """
    return sorted(_EXTRACTORS)


def shipped_model_names():
    """Names of the models shipped in ``itk_suits/models/`` (their folder names), sorted.

    Each is accepted as ``features`` by :func:`get_feature_extractor`.

    Returns
    -------
    list of str
    """
    return [folder.name for folder in shipped_model_dirs()]


#: ``features="auto"``: see :func:`resolved_features`.
AUTO_FEATURES = "auto"


def is_auto(features):
    """Whether ``features`` is ``"auto"`` (any case, surrounding spaces ignored)."""
    return isinstance(features, str) and features.strip().lower() == AUTO_FEATURES


def resolved_features(features, ndim, modalities=None, root=None):
    """The features a registration runs: ``"auto"`` resolved, anything else as given.

    ``"auto"`` (``register``'s default) is MIND-SSC, except where the caller
    names the modalities of both images and a shipped model of this
    dimension has a network for each of them by name and records in its card
    (``registration_defaults``) which features measured best for that
    (fixed, moving) pair: MIND-SSC, the model, or both concatenated (see
    ``itk_suits/models/README.md`` for the measurements).

    Parameters
    ----------
    features : str or object
        What the caller passed.
    ndim : {2, 3}
        Dimension of the images.
    modalities : (str, str), optional
        Checked lowercase modality names of the fixed and the moving image.
    root : str or os.PathLike, optional
        Folder of the shipped models (default ``itk_suits/models/``).

    Returns
    -------
    str or object
        ``features``, or for ``"auto"`` a feature string such as ``"mind"``
        or ``"mind+suits-abdomen-2d"``.
    """
    if not is_auto(features):
        return features
    if modalities is not None:
        key = ",".join(modalities)
        for folder in shipped_model_dirs(root):
            card = read_model_card(folder)
            if card.ndim == ndim and all(name in card.networks for name in modalities) \
                    and key in card.registration_defaults:
                return card.registration_defaults[key]
    return MindFeatures.name


def _looks_like_path(text):
    return os.sep in text or "/" in text or text.startswith((".", "~")) or os.path.exists(text)


def get_feature_extractor(name):
    """The feature extractor for ``name``.

    Parameters
    ----------
    name : str, os.PathLike, FeaturePair or FeatureExtractor
        ``"mind"`` (MIND-SSC, multi-modal), ``"intensity"`` (robustly normalised
        intensities, mono-modal), ``"pretrained"`` (the shipped model of the
        image dimension), the name of a shipped model (e.g.
        ``"suits-synth-2d"``, see :func:`shipped_model_names`), the path of a
        model folder (``model.json`` and ONNX files), or several
        of these joined by ``"+"`` to concatenate their channels
        (``"mind+my_model/"``). Names are case-insensitive. A
        :class:`~itk_suits.features.cnn.FeaturePair` is wrapped in a
        :class:`TorchFeatureExtractor`; an extractor is returned as it is.

    Returns
    -------
    FeatureExtractor

    Raises
    ------
    ParameterError
        An unknown name, a model folder that is missing, corrupted or invalid,
        or ``"pretrained"`` when no model is shipped. A folder in the working
        directory with the name of a shipped model must be given as a path
        (``"./name"``).

    Examples
    --------
    >>> from itk_suits.features import get_feature_extractor
    >>> get_feature_extractor("mind").channels(3)
    12
    >>> get_feature_extractor("mind+intensity").channels(2)
    7
    """
    if isinstance(name, FeatureExtractor):
        return name
    if isinstance(name, FeaturePair):
        return TorchFeatureExtractor(name)
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    text = name.strip() if isinstance(name, str) else None
    key = text.lower() if text is not None else None
    if key in _EXTRACTORS:
        return _EXTRACTORS[key]()
    if key == AUTO_FEATURES:
        raise ParameterError("features='auto' is resolved by register() from the images' dimension and "
                             "modalities (see itk_suits.features.resolved_features); name the features here, "
                             "e.g. 'mind'")
    if key == "pretrained":
        return PretrainedFeatures()
    if text and "+" in text and not os.path.isdir(text):
        return ConcatenatedFeatures([get_feature_extractor(part) for part in text.split("+")])
    shipped = shipped_model_dir(text) if text and not ("/" in text or os.sep in text) else None
    if shipped is not None:
        from itk_suits.features.onnx import ONNXFeatureExtractor

        extractor = ONNXFeatureExtractor(shipped)
        extractor.name = shipped.name  # messages name the model as the caller did
        return extractor
    if text and _looks_like_path(text):
        from itk_suits.features.onnx import ONNXFeatureExtractor

        return ONNXFeatureExtractor(os.path.expanduser(text))
    known = available_features() + ["pretrained"] + shipped_model_names()
    raise ParameterError(
        f"unknown feature extractor {name!r}; features must be one of "
        f"{', '.join(repr(name) for name in known)}, the path of a "
        "model folder (e.g. './my_model'), or names joined by '+' (e.g. 'mind+./my_model')"
    )
