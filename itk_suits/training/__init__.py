"""Learning SUITS features: supervision from label maps.

* :mod:`.sdm`: label maps to tanh-scaled signed distance maps (background + one per label);
* :mod:`.phantoms`: organ phantoms and multi-modal image pairs synthesised from label maps;
* :mod:`.scheme`: the pair presentation scheme of Algorithm 1;
* :mod:`.losses`: the step-matching loss (Algorithm 1), the unrolled alignment loss and the
  regression of merged-label SDMs (anatomy-anchored), each with the loss of constant features
  (the collapse signal);
* :mod:`.trainer`: the training loop shared by the modes;
* :mod:`.pairs`: training pairs from images and label maps of two modalities, or from
  synthetic phantoms (the file lists come from :mod:`itk_suits.interop.datasets`);
* :mod:`.checkpoint`: checkpoints of a run and resuming it;
* :mod:`.api`: :func:`train_features`, which trains and writes a model folder.
"""

from itk_suits.interop.datasets import dataset_json_images, folder_images
from itk_suits.training.api import train_features, train_on_pairs
from itk_suits.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from itk_suits.training.pairs import synthetic_training_pairs, training_pairs
from itk_suits.training.losses import LossValue, sdm_regression_loss, step_matching_loss, unrolled_alignment_loss
from itk_suits.training.scheme import presentation_scheme
from itk_suits.training.sdm import DEFAULT_ALPHA, signed_distance_maps
from itk_suits.training.phantoms import SyntheticPair, organ_phantom, synthesize_modality, synthetic_pair
from itk_suits.training.trainer import MODES, FeatureTrainer, TrainingPair, TrainingSettings

__all__ = [
    "DEFAULT_ALPHA",
    "signed_distance_maps",
    "SyntheticPair",
    "organ_phantom",
    "synthesize_modality",
    "synthetic_pair",
    "presentation_scheme",
    "LossValue",
    "sdm_regression_loss",
    "step_matching_loss",
    "unrolled_alignment_loss",
    "MODES",
    "FeatureTrainer",
    "TrainingPair",
    "TrainingSettings",
    "training_pairs",
    "folder_images",
    "dataset_json_images",
    "synthetic_training_pairs",
    "CHECKPOINT_NAME",
    "load_checkpoint",
    "train_features",
    "train_on_pairs",
]
