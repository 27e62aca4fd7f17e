"""Feature training: presentation scheme, collapse ratio, and that each mode's update lowers its loss."""

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from itk_suits import register
from itk_suits.evaluation import dice
from itk_suits.core import BSplineDescentStep, DescentSettings, Scale
from itk_suits.features.cnn import FeaturePair
from itk_suits.training.losses import step_matching_loss, unrolled_alignment_loss
from itk_suits.training.scheme import presentation_scheme
from itk_suits.training.sdm import signed_distance_maps
from itk_suits.training.phantoms import organ_phantom, synthesize_modality, synthetic_pair
from itk_suits.training.trainer import FeatureTrainer, TrainingPair, TrainingSettings


def _sdm(labels, count):
    return torch.from_numpy(signed_distance_maps(labels, list(range(1, count + 1))))[None]


def _training_pair(pair, organs):
    image = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    return TrainingPair(image(pair.fixed), image(pair.moving), _sdm(pair.fixed_labels, organs),
                        _sdm(pair.moving_labels, organs))


def _pair(seed, shape=(64, 64)):
    return _training_pair(synthetic_pair(shape, seed=seed, organs=4, magnitude=4.0), 4)


def test_presentation_scheme_presents_every_pair_equally_and_mixes_batches():
    batches = presentation_scheme(pairs=5, presentations=12, subintervals=4, batch=2, rng=np.random.default_rng(0))
    flat = [index for batch in batches for index in batch]
    assert sorted(np.bincount(flat)) == [12] * 5
    assert all(len(set(batch)) == len(batch) <= 2 for batch in batches)
    # pairs advance unevenly: some batch holds two pairs presented a different number of times so far
    seen = np.zeros(5, int)
    mixed = False
    for batch in batches:
        mixed |= len(batch) == 2 and seen[batch[0]] != seen[batch[1]]
        seen[batch] += 1
    assert mixed


def test_synthetic_pair_has_two_modalities_of_one_deformed_anatomy():
    pair = synthetic_pair((48, 56), seed=3, organs=4)
    assert set(np.unique(pair.fixed_labels)) <= set(range(5)) and pair.fixed_labels.max() > 0
    assert pair.fixed.shape == pair.moving.shape == (48, 56)
    assert not np.array_equal(pair.fixed_labels, pair.moving_labels)  # deformed
    labels = organ_phantom((40, 40), organs=3, seed=1)
    a, b = synthesize_modality(labels, seed=1), synthesize_modality(labels, seed=2)
    means = lambda image: [image[labels == k].mean() for k in range(1, 4)]  # noqa: E731
    assert np.argsort(means(a)).tolist() != np.argsort(means(b)).tolist() or not np.allclose(means(a), means(b), atol=0.05)


def _module_and_grid(pair):
    module = BSplineDescentStep(pair.fixed.shape[2:], 8.0)
    return module, module.grid.zeros()


@pytest.mark.parametrize("kind", ["mse", "cosine"])
def test_collapse_ratio_is_zero_for_sdm_features_and_one_for_constant_features(kind):
    pair = _pair(1)
    module, grid = _module_and_grid(pair)
    fixed_sdm, moving_sdm = module.level(pair.fixed_sdm), module.level(pair.moving_sdm)
    perfect = step_matching_loss(module, fixed_sdm, moving_sdm, fixed_sdm, moving_sdm, grid, DescentSettings(), kind=kind)
    assert perfect.ratio == pytest.approx(0.0, abs=1e-6) and perfect.constant > 0
    constant = torch.ones(1, 8, *module.working)
    collapsed = step_matching_loss(module, constant, constant, fixed_sdm, moving_sdm, grid, DescentSettings(), kind=kind)
    assert collapsed.ratio == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("mode", ["algorithm1", "algorithm1-cosine", "unrolled"])
def test_one_feature_update_lowers_the_loss_of_its_mode(mode):
    torch.manual_seed(0)
    pair = _pair(2)
    module, grid = _module_and_grid(pair)
    networks = FeaturePair(2)
    optimizer = torch.optim.Adam(networks.parameters(), lr=1e-3)
    fixed_sdm, moving_sdm = module.level(pair.fixed_sdm), module.level(pair.moving_sdm)

    def loss():
        fixed = module.level(networks(pair.fixed, role="fixed"))
        moving = module.level(networks(pair.moving, role="moving"))
        if mode.startswith("algorithm1"):
            kind = "cosine" if mode.endswith("cosine") else "mse"
            return step_matching_loss(module, fixed, moving, fixed_sdm, moving_sdm, grid, DescentSettings(),
                                      kind=kind).loss
        value, _ = unrolled_alignment_loss(module, fixed, moving, fixed_sdm, moving_sdm, grid, 0.2,
                                           DescentSettings(), steps=5)
        return value.loss

    before = loss()
    for _ in range(3):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert float(loss().detach()) < float(before.detach())


@pytest.mark.parametrize("mode", ["algorithm1", "unrolled"])
def test_trainer_runs_every_scale_and_logs_ratio_one_for_constant_features(mode):
    pairs = [_pair(seed) for seed in (3, 4, 5)]
    settings = TrainingSettings(mode=mode, scales=(Scale(16, 20, 0.2), Scale(8, 20, 0.4)), unrolled_steps=5,
                                feature_learning_rate=0.0)
    networks = FeaturePair(2)
    for network in networks.networks.values():  # the last layer's weights zero: features = its bias, constant
        torch.nn.init.zeros_(network.layers[-1].weight)
    trainer = FeatureTrainer(networks, pairs, settings)
    history = trainer.train()
    assert len(history) == trainer.planned_updates()
    assert {record["scale"] for record in history} == {0, 1}
    assert all(record["constant_loss"] > 0 for record in history)
    assert all(record["ratio"] == pytest.approx(1.0, rel=1e-4) for record in history)


def test_a_modality_seed_keeps_one_intensity_table_across_subjects():
    labels = organ_phantom((40, 40), organs=3, seed=1)
    other = organ_phantom((40, 40), organs=3, seed=2)
    a = synthesize_modality(labels, seed=1, modality_seed=7, noise=0.0, bias=0.0, blur=0.0)
    b = synthesize_modality(other, seed=2, modality_seed=7, noise=0.0, bias=0.0, blur=0.0)
    c = synthesize_modality(other, seed=2, modality_seed=8, noise=0.0, bias=0.0, blur=0.0)
    mean = lambda image, anatomy, k: image[anatomy == k].mean()  # noqa: E731
    for k in range(1, 4):
        assert abs(mean(a, labels, k) - mean(b, other, k)) < 0.2  # same modality: jitter only
    assert max(abs(mean(b, other, k) - mean(c, other, k)) for k in range(1, 4)) > 0.1  # another modality


# --- learning transfers to unseen pairs -----------------------------------------------------------

def _modality_pair(seed, shape=(48, 48)):
    """An organ phantom in a CT-like modality and a deformed copy in an MR-like one.

    Every image of a modality shares one intensity table, as scans of a data set do.
    """
    return synthetic_pair(shape, seed=seed, organs=3, magnitude=3.0, control_spacing=16, modality_seeds=(11, 22))


def _organ_dice(features, pairs):
    """Mean organ Dice after registering each pair."""
    scores = []
    for pair in pairs:
        result = register(pair.fixed, pair.moving, features=features, grid_spacings=(12, 6), iterations=60)
        warped = result.warp(pair.moving_labels, interpolator="nearest")
        overlap = dice(*(sitk.GetImageFromArray(np.asarray(a, np.uint8)) for a in (pair.fixed_labels, warped)),
                       labels=[1, 2, 3])
        scores.append(np.nanmean(list(overlap.values())))
    return float(np.mean(scores))


def test_briefly_trained_features_register_held_back_pairs_better_than_untrained_ones():
    """Ten epochs of the unrolled mode on new phantom pairs every epoch, from three initialisations.

    The held-back pairs have anatomy and deformations never seen in training. A
    random network can be lucky or not (its Dice varies a lot between
    initialisations), so the comparison is the mean over the initialisations.
    """
    held_back = [_modality_pair(90_000 + 10 * k) for k in range(6)]

    def training_pairs(seed):
        def pairs_of_epoch(epoch):
            return [_training_pair(_modality_pair(seed * 10_000 + epoch * 100 + 10 * k), 3) for k in range(8)]
        return pairs_of_epoch

    settings = TrainingSettings(mode="unrolled", scales=(Scale(12, 40, 0.2), Scale(6, 40, 0.4)), epochs=10)
    untrained, trained = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        networks = FeaturePair(2, shared=True)
        untrained.append(_organ_dice(networks, held_back))
        FeatureTrainer(networks, training_pairs(seed), replace(settings, seed=seed)).train()
        trained.append(_organ_dice(networks, held_back))
    assert np.mean(trained) > np.mean(untrained) + 0.02, (untrained, trained)
