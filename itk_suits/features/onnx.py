"""Feature networks as ONNX files: export, check against torch, and run with onnxruntime.

Export uses torch's TorchScript-based exporter (``torch.onnx.export(...,
dynamo=False)``): it needs only torch, whereas the newer ``torch.export``-based
exporter also needs the ``onnxscript`` package. Batch and spatial axes are
dynamic, so one file serves images of any size. The network starts at the first
convolution; the input normalisation
(:func:`~itk_suits.features.cnn.normalize_intensities`, percentiles recorded in
the model card) runs in torch before onnxruntime, exactly as before the torch
network.

:class:`ONNXFeatureExtractor` runs a model folder (see
:mod:`itk_suits.features.model`) with onnxruntime: the CUDA execution provider
when ``onnxruntime-gpu`` is installed and torch sees a GPU, else the CPU one.
"""

from __future__ import annotations

import copy
import inspect
import os
import pathlib
import warnings

import numpy as np
import torch

from itk_suits._version import __version__
from itk_suits.errors import ParameterError, SuitsError
from itk_suits.features.cnn import ARCHITECTURES, ROLES, FeaturePair, check_role, normalize_intensities
from itk_suits.features.mind import check_image_batch
from itk_suits.features.model import (
    WEIGHTS_NAME,
    ModelCard,
    card_networks,
    file_sha256,
    read_model_card,
    trained_modalities,
    verify_model_files,
    weights_dict,
    write_model_card,
)
from itk_suits.features.base import FeatureExtractor

__all__ = ["ONNX_OPSET", "ONNXFeatureExtractor", "compare_onnx_to_torch", "export_onnx"]

#: ONNX opset of exported networks (onnxruntime >= 1.16 runs it).
ONNX_OPSET = 17
#: Spatial size of the tracing input; the exported axes are dynamic.
_EXPORT_SIZE = {2: (32, 32), 3: (16, 16, 16)}
#: Non-square sizes, unlike the tracing input, for :func:`compare_onnx_to_torch`.
_CHECK_SIZE = {2: (45, 61), 3: (19, 23, 29)}
_AXIS_NAMES = ("depth", "height", "width")
_CPU = "CPUExecutionProvider"
# torch >= 2.5 chooses the exporter with ``dynamo`` (the torch.export-based one by default
# from 2.9); older versions only have the TorchScript-based one.
_TORCHSCRIPT_EXPORTER = (
    {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
)
_CUDA = "CUDAExecutionProvider"
#: The single feature networks (one role's network, no normalisation).
_NETWORKS = tuple(ARCHITECTURES.values())


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:
        raise ParameterError(
            "learned feature models need onnxruntime: pip install onnxruntime "
            "(or onnxruntime-gpu for CUDA)"
        ) from error
    return onnxruntime


def _check_ndim_argument(model, ndim):
    if ndim is not None and ndim != model.ndim:
        raise ParameterError(f"ndim={ndim!r} but the model is {model.ndim}D")
    return model.ndim


def _export_network(network, path, opset):
    """Write one feature network as an ONNX file with dynamic batch and spatial axes."""
    network = copy.deepcopy(network).cpu().eval()
    example = torch.zeros((1, 1) + _EXPORT_SIZE[network.ndim])
    spatial = {2 + i: name for i, name in enumerate(_AXIS_NAMES[3 - network.ndim:])}
    axes = {0: "batch", **spatial}
    with warnings.catch_warnings():
        # the TorchScript exporter announces its deprecation, traces the input shape check
        # and reports that it cannot fold the slices of replicate padding: none matters here
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        torch.onnx.export(
            network,
            (example,),
            os.fspath(path),
            **_TORCHSCRIPT_EXPORTER,
            input_names=["image"],
            output_names=["features"],
            dynamic_axes={"image": axes, "features": axes},
            opset_version=opset,
        )


def _refuse_existing(paths, overwrite):
    existing = [os.fspath(p) for p in paths if os.path.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"not overwriting {existing}; pass overwrite=True (CLI: --overwrite)")


def export_onnx(
    model,
    path,
    ndim=None,
    *,
    name=None,
    description="",
    modalities=None,
    training=None,
    benchmark=None,
    torch_weights=True,
    overwrite=False,
    opset=ONNX_OPSET,
):
    """Export a feature network to ONNX, or a :class:`FeaturePair` to a model folder.

    Parameters
    ----------
    model : FeatureCNN, FeatureUNet or FeaturePair
        A single network is written to the file ``path`` (its input must be
        normalised already). A pair is written as a model folder ``path``:
        ``fixed.onnx`` and ``moving.onnx`` (or ``shared.onnx``), ``model.json``
        and, with ``torch_weights``, ``model.pt``; the card records the
        SHA-256 of each ONNX file and the largest difference between
        onnxruntime and torch measured on a random image of another size
        (:func:`compare_onnx_to_torch`).
    path : str or os.PathLike
        ONNX file (a single network) or folder (``FeaturePair``).
    ndim : {2, 3}, optional
        Checked against the model's dimension when given.
    name, description : str
        Card entries (folder export); ``name`` defaults to the folder name.
    modalities : dict, optional
        What each network was trained on, e.g. ``{"fixed": "CT", "moving": "MR"}``.
    training, benchmark : dict, optional
        Training data and command; measured numbers (free-form card entries).
    torch_weights : bool
        Also write ``model.pt`` (for fine-tuning; folder export).
    overwrite : bool
        Replace existing files.
    opset : int
        ONNX opset.

    Returns
    -------
    pathlib.Path
        The file or folder written.

    Raises
    ------
    ParameterError
        Not a feature network, or ``ndim`` differs from the model's.
    FileExistsError
        Output files exist and ``overwrite`` is false.

    Examples
    --------
    >>> from itk_suits.features import FeaturePair, export_onnx
    >>> export_onnx(FeaturePair(ndim=2), "my_model")          # doctest: +SKIP
    """
    path = pathlib.Path(path)
    if isinstance(model, _NETWORKS):
        _check_ndim_argument(model, ndim)
        _refuse_existing([path], overwrite)
        path.parent.mkdir(parents=True, exist_ok=True)
        _export_network(model, path, opset)
        return path
    if not isinstance(model, FeaturePair):
        raise ParameterError(f"model must be a feature network or a FeaturePair, got {type(model).__name__}")
    _check_ndim_argument(model, ndim)
    names = trained_modalities(modalities)
    networks, roles, files = card_networks(model.shared, names)
    outputs = [path / f for f in sorted(set(files.values()))] + [path / "model.json"]
    if torch_weights:
        outputs.append(path / WEIGHTS_NAME)
    _refuse_existing(outputs, overwrite)
    path.mkdir(parents=True, exist_ok=True)
    for role, filename in files.items():
        _export_network(model.network(role), path / filename, opset)
    fields = dict(
        name=name or path.resolve().name,
        description=description,
        training=dict(training or {}),
        benchmark=dict(benchmark or {}),
    )
    card = ModelCard(
        ndim=model.ndim,
        channels=model.out_channels,
        shared=model.shared,
        networks=networks,
        roles=roles,
        sha256={f: file_sha256(path / f) for f in sorted(set(files.values()))},
        architecture=model.network("fixed").description,
        input_normalization={"method": "percentile", "percentiles": list(model.percentiles), "clip": [0, 1]},
        onnx_opset=opset,
        torch_weights=WEIGHTS_NAME if torch_weights else None,
        itk_suits_version=__version__,
        **fields,
    )
    write_model_card(card, path)  # the check below reads the folder as a user would
    if torch_weights:
        torch.save(weights_dict(model, modalities=None if names is None else list(names), **fields),
                   path / WEIGHTS_NAME)
    card.onnx_max_abs_difference = compare_onnx_to_torch(model, path, modalities=names)
    write_model_card(card, path)
    return path


def _random_image(shape, seed):
    """Smooth random intensities in a CT-like range, ``[1, 1, *shape]``."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand((1, 1) + tuple(shape), generator=generator)
    pool = torch.nn.functional.avg_pool2d if len(shape) == 2 else torch.nn.functional.avg_pool3d
    return 2000.0 * pool(noise, 5, stride=1, padding=2, count_include_pad=False) - 1000.0


def compare_onnx_to_torch(model, path, shape=None, seed=0, modalities=None):
    """Largest absolute difference between onnxruntime (CPU) and torch features.

    Parameters
    ----------
    model : FeatureCNN, FeatureUNet or FeaturePair
        The torch model.
    path : str or os.PathLike
        Its exported ONNX file (a single network) or model folder (``FeaturePair``).
    shape : tuple of int, optional
        Spatial size of the random test image (array order); default a
        non-square size that differs from the export size, which exercises the
        dynamic axes.
    seed : int
        Seed of the random test image.
    modalities : (str, str), optional
        The modalities of the pair's fixed and moving network, for a folder
        whose card names them (as given to :func:`export_onnx`).

    Returns
    -------
    float
        ``max |onnx - torch|`` over every voxel, channel and (for a pair) both
        modalities, in feature units.
    """
    shape = tuple(shape) if shape is not None else _CHECK_SIZE[model.ndim]
    image = _random_image(shape, seed)
    model = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        if isinstance(model, _NETWORKS):
            normalized = normalize_intensities(image)
            session = _session(os.fspath(path), [_CPU], threads=torch.get_num_threads())
            onnx_features = torch.from_numpy(session.run(None, {"image": normalized.numpy()})[0])
            return float((onnx_features - model(normalized)).abs().max())
        extractor = ONNXFeatureExtractor(path, providers="cpu")
        names = modalities or (None, None)
        return max(
            float((extractor(image, role=role, modality=name) - model(image, role=role)).abs().max())
            for role, name in zip(ROLES, names)
        )


def _session(path, providers, threads):
    """An onnxruntime session, or :class:`ParameterError` when the file cannot be loaded."""
    onnxruntime = _onnxruntime()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(path, sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime's errors derive from Exception only
        raise ParameterError(f"onnxruntime cannot load {path!r}: {error}") from error


def _resolve_providers(providers):
    """Execution providers for ``"auto"``, ``"cpu"``, ``"cuda"`` or an explicit list."""
    available = _onnxruntime().get_available_providers()
    if providers == "auto":
        return [_CUDA, _CPU] if _CUDA in available and torch.cuda.is_available() else [_CPU]
    if providers == "cpu":
        return [_CPU]
    if providers == "cuda":
        providers = [_CUDA, _CPU]
    if isinstance(providers, str) or not all(isinstance(p, str) for p in providers):
        raise ParameterError(
            f"providers must be 'auto', 'cpu', 'cuda' or a list of onnxruntime provider names, got {providers!r}"
        )
    missing = [p for p in providers if p not in available]
    if missing:
        hint = " (install onnxruntime-gpu: pip install 'itk-suits[gpu]')" if _CUDA in missing else ""
        raise ParameterError(f"onnxruntime offers {available}, not {missing}{hint}")
    return list(providers)


class ONNXFeatureExtractor(FeatureExtractor):
    """Features from a model folder, computed with onnxruntime.

    Parameters
    ----------
    model_dir : str or os.PathLike
        A model folder (``model.json`` and its ONNX files, see
        :mod:`itk_suits.features.model`).
    providers : "auto", "cpu", "cuda" or list of str
        onnxruntime execution providers. ``"auto"``: CUDA when
        ``onnxruntime-gpu`` is installed and torch sees a GPU, else CPU.

    Attributes
    ----------
    card : ModelCard
        The model card.
    providers : list of str
        The providers onnxruntime actually uses.

    Raises
    ------
    ParameterError
        Missing folder or files, a card that cannot be read, an ONNX file whose
        SHA-256 differs from the card (corrupted), a network whose input rank
        differs from the card's dimension, channel counts that differ between
        the card and the networks, a file onnxruntime cannot load, or a CUDA
        provider that was asked for but cannot start.
    ModalityError
        (when called) The card has no network for the image's role and
        modality (see :func:`~itk_suits.features.model.select_network`).

    Notes
    -----
    Each call normalises the image in torch, runs the network of the image's
    modality (or role, see :func:`~itk_suits.features.model.select_network`) on the
    CPU copy of it (onnxruntime's CUDA provider copies to the GPU itself) and
    returns the features on the image's device. Sessions use as many threads
    as torch does at the time of the call.
    """

    def __init__(self, model_dir, providers="auto"):
        self.directory = pathlib.Path(model_dir)
        self.card = read_model_card(self.directory)
        self.name = os.fspath(model_dir)
        self._paths = verify_model_files(self.directory, self.card)
        self._providers = _resolve_providers(providers)
        self._sessions = {}
        self._input_names = {}
        channels = {filename: self._check_network(filename) for filename in self.card.files}
        if set(channels.values()) != {self.card.channels}:
            found = ", ".join(f"{filename} gives {c}" for filename, c in channels.items())
            raise ParameterError(
                f"feature model {self.name!r}: channel counts do not match: {found}, model.json says "
                f"{self.card.channels}; fixed and moving features are compared channel by channel, so every "
                "network must give the channels the card states (re-export the model)"
            )
        self.providers = self._get_session(self.card.files[0]).get_providers()
        if self._providers[0] == _CUDA and _CUDA not in self.providers and providers != "auto":
            raise ParameterError(
                f"onnxruntime could not start the CUDA provider for {self.name!r} (using {self.providers}); "
                "check the CUDA and cuDNN versions onnxruntime-gpu needs, or use providers='cpu'"
            )

    def _get_session(self, filename, threads=None):
        threads = torch.get_num_threads() if threads is None else threads
        key = (self._paths[filename], threads)
        if key not in self._sessions:
            self._sessions[key] = _session(self._paths[filename], self._providers, threads)
        return self._sessions[key]

    def _check_network(self, filename):
        """Check the inputs and input rank of a network; return its output channels (None if not static)."""
        session = self._get_session(filename)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ParameterError(
                f"feature model {self.name!r}: {filename} must have one input and one output, has "
                f"{len(inputs)} and {len(outputs)}"
            )
        rank = len(inputs[0].shape)
        if rank != self.card.ndim + 2:
            raise ParameterError(
                f"feature model {self.name!r}: {filename} takes {rank}-dimensional tensors (a {rank - 2}D "
                f"network) but model.json says ndim={self.card.ndim}"
            )
        self._input_names[filename] = inputs[0].name
        return outputs[0].shape[1] if len(outputs[0].shape) == rank else None

    def channels(self, ndim):
        if ndim != self.card.ndim:
            raise ParameterError(
                f"feature model {self.name!r} is {self.card.ndim}D and cannot describe {ndim}D images; "
                f"use a {ndim}D model or features='mind'"
            )
        return self.card.channels

    def check_modality(self, role, modality, ndim=None):
        check_role(role)
        if ndim is not None:
            self.channels(ndim)
        self.card.network_file(role, modality, source=self.name)

    def __call__(self, image, role="fixed", modality=None):
        check_role(role)
        image = check_image_batch(image)
        self.channels(image.dim() - 2)
        filename = self.card.network_file(role, modality, source=self.name)
        normalized = normalize_intensities(image, self.card.percentiles)
        array = np.ascontiguousarray(normalized.detach().cpu().numpy())
        session = self._get_session(filename)
        try:
            features = session.run(None, {self._input_names[filename]: array})[0]
        except Exception as error:  # onnxruntime's errors derive from Exception only
            raise SuitsError(
                f"onnxruntime failed computing {role} features with {filename} of {self.name!r} on a "
                f"{list(image.shape)} image: {error}"
            ) from error
        return torch.from_numpy(features).to(image.device)
