"""Feature extraction: the image representations registration compares.

``mind_ssc`` computes the MIND-SSC descriptor; ``FeatureCNN`` (the paper's),
``FeatureUNet`` (``FeatureUNet4``: four levels) and ``FeaturePair`` are the learnable SUITS feature networks; ``export_onnx`` writes them as ONNX
model folders that ``ONNXFeatureExtractor`` runs with onnxruntime;
``get_feature_extractor`` returns the extractor for a name, a shipped model's
name, a model folder or a ``"+"`` combination (``available_features()`` lists
the built-in names, ``shipped_model_names()`` the shipped models;
``resolved_features`` turns ``register``'s default ``"auto"`` into MIND-SSC or
a shipped model for the named modalities). Learned
models name the modalities of their networks (:mod:`itk_suits.features.model`).
The ONNX tools are imported when first used.
"""

from itk_suits.features.cnn import FeatureCNN, FeaturePair, FeatureUNet, FeatureUNet4, normalize_intensities
from itk_suits.features.mind import mind_ssc
from itk_suits.features.model import ModelCard, load_torch_weights, read_model_card
from itk_suits.features.base import FeatureExtractor
from itk_suits.features.registry import (
    ConcatenatedFeatures,
    TorchFeatureExtractor,
    available_features,
    get_feature_extractor,
    resolved_features,
    shipped_model_names,
)

_ONNX_NAMES = ("ONNXFeatureExtractor", "compare_onnx_to_torch", "export_onnx")


def __getattr__(name):
    """The ONNX tools, imported on first use (onnx and onnxruntime are heavy)."""
    if name in _ONNX_NAMES:
        from itk_suits.features import onnx

        return getattr(onnx, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ConcatenatedFeatures",
    "FeatureCNN",
    "FeatureExtractor",
    "FeaturePair",
    "FeatureUNet",
    "FeatureUNet4",
    "ModelCard",
    "ONNXFeatureExtractor",
    "TorchFeatureExtractor",
    "available_features",
    "compare_onnx_to_torch",
    "export_onnx",
    "get_feature_extractor",
    "load_torch_weights",
    "mind_ssc",
    "normalize_intensities",
    "read_model_card",
    "resolved_features",
    "shipped_model_names",
]
