"""Feature extraction: the image representations registration compares.

``mind_ssc`` computes the MIND-SSC descriptor; ``get_feature_extractor`` returns a
named extractor (``available_features()`` lists the names).
"""

from itk_suits.features.mind import mind_ssc
from itk_suits.features.registry import (
    FeatureExtractor,
    available_features,
    get_feature_extractor,
)

__all__ = ["FeatureExtractor", "available_features", "get_feature_extractor", "mind_ssc"]
