"""Feature extraction: the image representations registration compares.

``mind_ssc`` computes the MIND-SSC descriptor; ``FeatureCNN`` and ``FeaturePair``
are the learnable SUITS feature networks; ``export_onnx`` writes them as ONNX
model folders that ``ONNXFeatureExtractor`` runs with onnxruntime;
``get_feature_extractor`` returns the extractor for a name, a model folder or a
``"+"`` combination (``available_features()`` lists the built-in names).
"""

from itk_suits.features.cnn import FeatureCNN, FeaturePair, normalize_intensities
from itk_suits.features.mind import mind_ssc
from itk_suits.features.model import ModelCard, load_torch_weights, read_model_card
from itk_suits.features.onnx import ONNXFeatureExtractor, compare_onnx_to_torch, export_onnx
from itk_suits.features.registry import (
    ConcatenatedFeatures,
    FeatureExtractor,
    TorchFeatureExtractor,
    available_features,
    get_feature_extractor,
)

__all__ = [
    "ConcatenatedFeatures",
    "FeatureCNN",
    "FeatureExtractor",
    "FeaturePair",
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
]
