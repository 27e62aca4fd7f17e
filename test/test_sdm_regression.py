"""The anatomy-anchored objective (features regress merged-label SDMs) and the small U-Net."""

import csv

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from itk_suits import register
from itk_suits.errors import ParameterError
from itk_suits.evaluation import dice
from itk_suits.features import FeatureExtractor, FeaturePair, FeatureUNet, FeatureUNet4, export_onnx, read_model_card
from itk_suits.training import train_features
from itk_suits.training.losses import sdm_regression_loss, sdm_targets
from itk_suits.training.phantoms import synthetic_pair
from itk_suits.training.sdm import signed_distance_maps
from itk_suits.training.trainer import TrainingSettings

SCALES = [(12, 40, 0.2)]
FAST = dict(all_pairs=False, scales=SCALES, progress=False, device="cpu", modalities=("ct", "mr"))


def _phantom(seed):
    """An organ phantom in a CT-like modality and a deformed copy in an MR-like one (one table per modality)."""
    return synthetic_pair((48, 48), seed=seed, organs=3, magnitude=3.0, control_spacing=16, modality_seeds=(11, 22))


def _data(pairs):
    return [[getattr(pair, key) for pair in pairs] for key in ("fixed", "fixed_labels", "moving", "moving_labels")]


@pytest.fixture(scope="module")
def phantoms():
    return _data([_phantom(seed) for seed in range(4)])


def _log(folder):
    with open(folder / "training_log.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def test_sdm_targets_merge_label_groups_round_robin():
    sdm = torch.linspace(-1, 1, 10 * 6).reshape(1, 10, 2, 3)
    merged = sdm_targets(sdm, 4)
    assert merged.shape == (1, 4, 2, 3)
    torch.testing.assert_close(merged[:, 1], torch.minimum(torch.minimum(sdm[:, 1], sdm[:, 5]), sdm[:, 9]))
    few = sdm_targets(sdm[:, :3], 8)  # fewer SDM channels than features: the groups repeat
    assert torch.equal(few[:, 3], sdm[:, 0]) and torch.equal(few[:, 7], sdm[:, 1])


def test_the_targets_score_zero_and_the_best_constant_features_score_one():
    sdm = torch.tanh(torch.randn(1, 4, 16, 16))
    other = torch.tanh(torch.randn(1, 4, 16, 16))
    targets = sdm_targets(sdm, 8), sdm_targets(other, 8)
    assert sdm_regression_loss(*targets, sdm, other).ratio == pytest.approx(0.0, abs=1e-7)
    constants = [t.mean(dim=(2, 3), keepdim=True).expand_as(t) for t in targets]
    assert sdm_regression_loss(*constants, sdm, other).ratio == pytest.approx(1.0, rel=1e-5)


def _overlap(fixed_labels, moving_labels):
    """Mean Dice of the three organs."""
    scores = dice(*(sitk.GetImageFromArray(np.asarray(a, np.uint8)) for a in (fixed_labels, moving_labels)),
                  labels=[1, 2, 3])
    return np.nanmean(list(scores.values()))


def _organ_dice(model, pairs):
    """Mean organ Dice after registering each pair (CT-like fixed, MR-like moving) on the features alone
    (no mutual information: what is measured is the feature space); ``model`` may be a function of the pair
    giving its features."""
    scores = []
    for pair in pairs:
        features = model(pair) if callable(model) else model
        result = register(pair.fixed, pair.moving, features=features, modalities=("ct", "mr"), metric="features",
                          grid_spacings=(12, 6), iterations=60)
        scores.append(_overlap(pair.fixed_labels, result.warp(pair.moving_labels, interpolator="nearest")))
    return float(np.mean(scores))


class _Given(FeatureExtractor):
    """Features given in advance, one tensor per role."""

    name = "given"

    def __init__(self, fixed, moving):
        self.features = {"fixed": fixed, "moving": moving}

    def channels(self, ndim):
        return self.features["fixed"].shape[1]

    def __call__(self, image, role="fixed", modality=None):
        return self.features[role]


def test_the_regression_targets_themselves_register_held_back_pairs_well():
    """Features equal to the merged-label SDMs (what the networks learn to produce) align unseen phantom pairs."""
    held_back = [_phantom(90_000 + 10 * k) for k in range(4)]

    def targets(pair):
        maps = [torch.from_numpy(signed_distance_maps(labels, [1, 2, 3]))[None].float()
                for labels in (pair.fixed_labels, pair.moving_labels)]
        return _Given(*(sdm_targets(sdm, 8) for sdm in maps))

    initial = np.mean([_overlap(pair.fixed_labels, pair.moving_labels) for pair in held_back])
    assert _organ_dice(targets, held_back) > initial + 0.1


def test_a_few_epochs_learn_the_anatomy_and_register_held_back_pairs(phantoms, tmp_path):
    """Regression lowers the loss far below that of constant features, and the exported CT and MR networks
    register held-back phantom pairs (anatomy and deformations never seen) at least as well as untrained ones,
    on the mean over two initialisations."""
    held_back = [_phantom(90_000 + 10 * k) for k in range(4)]
    untrained, trained = [], []
    for seed in range(2):
        model = train_features(*phantoms, tmp_path / f"trained{seed}", mode="sdm-regression", epochs=10, seed=seed,
                               settings=TrainingSettings(feature_learning_rate=0.01), **FAST)
        ratios = [float(row["ratio"]) for row in _log(model)]
        assert ratios[0] > 2 and np.mean(ratios[-10:]) < 0.8, ratios
        card = read_model_card(model)
        assert card.networks == {"ct": "ct.onnx", "mr": "mr.onnx"} and card.training["mode"] == "sdm-regression"
        assert card.training["final_mean_ratio"] < 0.8
        torch.manual_seed(seed)  # the initialisation the training started from
        baseline = export_onnx(FeaturePair(2), tmp_path / f"untrained{seed}", modalities=("ct", "mr"))
        untrained.append(_organ_dice(baseline, held_back))
        trained.append(_organ_dice(model, held_back))
    assert np.mean(trained) >= np.mean(untrained), (untrained, trained)


def test_the_step_loss_is_an_optional_auxiliary_term(phantoms, tmp_path):
    plain = train_features(*phantoms, tmp_path / "plain", mode="sdm-regression", **FAST)
    auxiliary = train_features(*phantoms, tmp_path / "auxiliary", mode="sdm-regression",
                               settings=TrainingSettings(step_weight=0.5), **FAST)
    plain_log, auxiliary_log = _log(plain), _log(auxiliary)
    assert len(plain_log) == len(auxiliary_log)
    # the same first presentation: the auxiliary constant adds half the step loss of constant features
    assert float(auxiliary_log[0]["constant_loss"]) > float(plain_log[0]["constant_loss"])
    with pytest.raises(ParameterError, match="step_weight"):
        train_features(*phantoms, tmp_path / "negative", mode="sdm-regression",
                       settings=TrainingSettings(step_weight=-1.0), **FAST)


def test_an_interrupted_regression_run_resumes_to_the_same_weights(phantoms, tmp_path):
    options = dict(mode="sdm-regression", epochs=2, checkpoint_every=3, **FAST)
    reference = train_features(*phantoms, tmp_path / "reference", **options)

    def stop(record):
        if record["update"] == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_features(*phantoms, tmp_path / "resumed", callback=stop, **options)
    resumed = train_features(*phantoms, tmp_path / "resumed", **options)
    weights = [torch.load(folder / "model.pt", weights_only=True)["state_dict"] for folder in (reference, resumed)]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    assert read_model_card(resumed).training["resumed"]


@pytest.mark.parametrize("ndim, limit", [(2, 150_000), (3, 400_000)])
def test_the_unet_is_small_and_keeps_odd_sizes(ndim, limit):
    network = FeatureUNet(ndim)
    assert sum(p.numel() for p in network.parameters()) < limit
    shape = (1, 1, 21, 30) if ndim == 2 else (1, 1, 9, 13, 11)
    assert network(torch.rand(shape)).shape == (1, 8, *shape[2:])


@pytest.mark.parametrize("ndim", [2, 3])
def test_a_four_level_unet_pools_once_more_and_keeps_odd_sizes(ndim):
    shape = (1, 1, 37, 45) if ndim == 2 else (1, 1, 19, 23, 21)
    deep, shallow = FeatureUNet4(ndim), FeatureUNet(ndim)
    assert deep(torch.rand(shape)).shape == (1, 8, *shape[2:])
    assert [len(deep.down), len(deep.up)] == [3, 3] and [len(shallow.down), len(shallow.up)] == [2, 2]
    assert deep.bottom[0].in_channels == 64 and deep.bottom[0].out_channels == 128

    with pytest.raises(ParameterError, match="levels"):
        FeatureUNet(2, levels=1)


def test_a_unet_pair_trains_exports_and_reloads(phantoms, tmp_path):
    model = train_features(*phantoms, tmp_path / "unet", mode="sdm-regression", architecture="unet", **FAST)
    card = read_model_card(model)
    assert card.architecture.startswith("FeatureUNet") and card.onnx_max_abs_difference < 1e-4
    assert card.training["network"]["architecture"] == "unet"
    from itk_suits.features.model import load_torch_weights

    pair, _ = load_torch_weights(model / "model.pt")
    assert pair.architecture == "unet" and isinstance(pair.network("moving"), FeatureUNet)
    with pytest.raises(ParameterError, match="architecture must be one of"):
        FeaturePair(2, architecture="resnet")
