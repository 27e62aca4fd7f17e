"""Mattes mutual information and the descent it drives."""

import numpy as np
import pytest
import torch

from itk_suits.core.mutual_information import (
    intensity_range,
    mutual_information,
    mutual_information_force,
    to_bin_coordinates,
)


def _cubic(x):
    x = np.abs(x)
    return np.where(x < 1, (4 - 6 * x**2 + 3 * x**3) / 6, np.where(x < 2, (2 - x) ** 3 / 6, 0.0))


def _reference_mi(fixed, moving, weights, bins, fixed_kernel):
    """Dense Parzen histogram MI in numpy: every sample against every bin."""
    centres = np.arange(-2, bins + 2, dtype=float)
    moving_kernel = _cubic(moving[:, None] - centres[None])
    if fixed_kernel == "box":
        fixed_kernel_values = (np.round(fixed)[:, None] == centres[None]).astype(float)
    else:
        fixed_kernel_values = _cubic(fixed[:, None] - centres[None])
    joint = (fixed_kernel_values * weights[:, None]).T @ moving_kernel
    joint /= joint.sum()
    pf, pm = joint.sum(1), joint.sum(0)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / np.outer(pf, pm)[nz])).sum())


def _phantom(size=64, shift=0.0):
    """Smooth blobs, ``[1, 1, size, size]``, optionally shifted along x by ``shift`` voxels."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    x = x - shift
    image = (torch.exp(-((x - 24) ** 2 + (y - 30) ** 2) / 80) + 0.6 * torch.exp(-((x - 42) ** 2 + (y - 36) ** 2) / 40)
             + 0.3 * torch.exp(-((x - 30) ** 2 + (y - 14) ** 2) / 30))
    return image[None, None]


@pytest.mark.parametrize("fixed_kernel", ["box", "cubic"])
def test_mutual_information_matches_a_dense_numpy_histogram(fixed_kernel):
    generator = torch.Generator().manual_seed(0)
    fixed = torch.rand(2, 500, generator=generator, dtype=torch.float64) * 15
    moving = (fixed + torch.randn(2, 500, generator=generator, dtype=torch.float64)).clamp(0, 15)
    weights = (torch.rand(2, 500, generator=generator, dtype=torch.float64) > 0.2).double()
    values = mutual_information(fixed, moving, weights, bins=16, fixed_kernel=fixed_kernel)
    for b in range(2):
        expected = _reference_mi(fixed[b].numpy(), moving[b].numpy(), weights[b].numpy(), 16, fixed_kernel)
        assert values[b].item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def _bins(image, bins=32):
    return to_bin_coordinates(image, intensity_range(image), bins)


def test_mutual_information_is_largest_at_alignment_and_invariant_to_an_intensity_remapping():
    fixed = _phantom()
    values = []
    for shift in [-4, -2, -1, 0, 1, 2, 4]:
        moving = _phantom(shift=shift)
        remapped = torch.cos(3.0 * moving)  # non-monotonic: an intensity map MI must not care about
        values.append((shift, mutual_information(_bins(fixed).flatten(1), _bins(moving).flatten(1)).item(),
                       mutual_information(_bins(fixed).flatten(1), _bins(remapped).flatten(1)).item()))
    best = max(values, key=lambda v: v[1])
    assert best[0] == 0
    assert max(values, key=lambda v: v[2])[0] == 0
    # an affine remapping, inverting included, maps bin coordinates onto themselves or their mirror image
    aligned = mutual_information(_bins(fixed).flatten(1), _bins(fixed).flatten(1)).item()
    inverted = mutual_information(_bins(fixed).flatten(1), _bins(7.0 - 3.0 * fixed).flatten(1)).item()
    assert inverted == pytest.approx(aligned, rel=1e-6)


@pytest.mark.parametrize("fixed_kernel", ["box", "cubic"])
def test_mutual_information_gradient_matches_finite_differences(fixed_kernel):
    generator = torch.Generator().manual_seed(1)
    fixed = torch.rand(1, 300, generator=generator, dtype=torch.float64) * 9
    moving = (0.5 * fixed + torch.rand(1, 300, generator=generator, dtype=torch.float64) * 4).requires_grad_(True)
    mutual_information(fixed, moving, bins=10, fixed_kernel=fixed_kernel).sum().backward()
    analytic = moving.grad[0]
    h = 1e-5
    for i in [0, 7, 42, 299]:
        up, down = moving.detach().clone(), moving.detach().clone()
        up[0, i] += h
        down[0, i] -= h
        numeric = (mutual_information(fixed, up, bins=10, fixed_kernel=fixed_kernel)
                   - mutual_information(fixed, down, bins=10, fixed_kernel=fixed_kernel)).item() / (2 * h)
        assert analytic[i].item() == pytest.approx(numeric, rel=1e-4, abs=1e-9)


def test_closed_form_force_equals_the_derivative_of_the_mutual_information():
    generator = torch.Generator().manual_seed(3)
    fixed = torch.rand(2, 1, 30, 40, generator=generator, dtype=torch.float64) * 31
    moving = (0.5 * fixed + torch.rand(2, 1, 30, 40, generator=generator, dtype=torch.float64) * 12).clamp(0, 31)
    moving[0, 0, 0, :5], moving[0, 0, 1, :5] = 31.0, 0.0  # both ends of the bin range
    weights = (torch.rand(2, 1, 30, 40, generator=generator, dtype=torch.float64) > 0.2).double()
    gradients = [torch.randn(2, 1, 30, 40, generator=generator, dtype=torch.float64) for _ in range(2)]
    force = mutual_information_force(fixed, moving, gradients, weights, bins=32)
    values = moving.reshape(2, -1).clone().requires_grad_(True)
    information = mutual_information(fixed.reshape(2, -1), values, weights.reshape(2, -1), bins=32)
    (derivative,) = torch.autograd.grad(information.sum(), values)
    derivative = (derivative * weights.reshape(2, -1).sum(dim=1, keepdim=True)).reshape(moving.shape)
    expected = torch.cat([derivative * gradient for gradient in gradients], dim=1) * weights
    assert torch.allclose(force, expected, rtol=1e-10, atol=1e-12)
    assert expected.abs().max() > 0.1


def test_force_points_towards_alignment_and_vanishes_outside_the_weights():
    fixed = _bins(_phantom())
    moving = _bins(_phantom(shift=2.0))  # the moving anatomy sits 2 voxels further along +x
    from itk_suits.core.warp import central_differences
    weights = torch.ones_like(fixed)
    weights[..., :, :20] = 0
    force = mutual_information_force(fixed, moving, central_differences(moving), weights)
    assert force.shape == (1, 2, 64, 64)
    assert bool((force[:, :, :, :20] == 0).all())
    assert force[:, 0].sum().item() > 0  # sample further along +x: the displacement grows along x
    assert abs(force[:, 1].sum().item()) < 0.2 * force[:, 0].sum().item()


# --- the registration it drives ---------------------------------------------------------------------------------

FAST = dict(grid_spacings=(12, 8, 6), iterations=(80, 80, 80))


def _known_multimodal_pair(shape=(80, 88), magnitude=4.0, seed=2):
    """Fixed phantom, the same anatomy under a non-monotonic intensity map moved by a known smooth field."""
    from conftest import phantom, remap_nonmonotonic
    from itk_suits.core import invert_displacement, random_smooth_displacement, warp

    fixed = phantom(shape, seed=seed, blobs=16, smooth=False)
    u = random_smooth_displacement(shape, magnitude, control_spacing=24, seed=seed + 10)
    moving = warp(torch.from_numpy(remap_nonmonotonic(fixed))[None, None], invert_displacement(u))[0, 0]
    return fixed, moving.numpy().astype(np.float32), u[0].numpy()


def _interior_error(field_xyz, u, margin=4):
    inner = tuple(slice(margin, n - margin) for n in u.shape[1:])
    return np.linalg.norm(np.moveaxis(field_xyz, -1, 0) - u, axis=0)[inner].mean()


@pytest.mark.parametrize("metric", ["mi", "features+mi"])
def test_mutual_information_recovers_a_known_multimodal_displacement_without_folding(metric):
    import SimpleITK as sitk

    import itk_suits
    from itk_suits.evaluation.metrics import folding_percentage

    fixed, moving, u = _known_multimodal_pair()
    result = itk_suits.register(fixed, moving, metric=metric, **FAST)
    before = _interior_error(np.zeros_like(np.moveaxis(u, 0, -1)), u)
    after = _interior_error(result.displacement_field, u)
    assert after < 0.45 * before, (before, after)
    assert folding_percentage(sitk.GetImageFromArray(result.displacement_field, isVector=True)) == 0.0


def test_metric_mi_computes_no_features(monkeypatch):
    import itk_suits
    import itk_suits.registration.method as method

    def no_extractor(*args, **kwargs):
        raise AssertionError("metric='mi' must not compute features")

    monkeypatch.setattr(method, "get_feature_extractor", no_extractor)
    fixed, moving, _ = _known_multimodal_pair((40, 44), 2.0)
    result = itk_suits.register(fixed, moving, metric="mi", grid_spacings=(12,), iterations=5)
    assert np.isfinite(result.displacement_field).all()


def test_samples_outside_the_fixed_mask_exert_no_mutual_information_force():
    from itk_suits.core.optimizer import BSplineDescentStep

    fixed, moving, _ = _known_multimodal_pair((48, 48), 3.0)
    fixed_bins, moving_bins = (_bins(torch.from_numpy(a)[None, None].float()) for a in (fixed, moving))
    module = BSplineDescentStep((48, 48), 8.0, resolution=(1, 1))
    valid = torch.zeros(1, 1, 48, 48)
    valid[..., 10:30, 12:40] = 1
    level = module.moving_level(None, intensity=moving_bins)
    step = module.step(None, level, module.grid.zeros(1), 0.0, valid, fixed_intensity=fixed_bins)
    assert bool((step * (1 - valid) == 0).all())
    assert step.abs().sum() > 0
    # the masked histogram: voxels outside the mask do not change the force inside it
    scrambled = fixed_bins.clone()
    scrambled[valid == 0] = torch.rand(int((valid == 0).sum()), generator=torch.Generator().manual_seed(0)) * 31
    other = BSplineDescentStep((48, 48), 8.0, resolution=(1, 1))
    again = other.step(None, level, other.grid.zeros(1), 0.0, valid, fixed_intensity=scrambled)
    assert torch.allclose(again, step)


def test_a_scale_of_mutual_information_weight_zero_follows_the_features_alone(monkeypatch):
    import itk_suits
    import itk_suits.core.optimizer as optimizer

    fixed, moving, _ = _known_multimodal_pair((40, 44), 2.0)
    options = dict(grid_spacings=(12, 8), iterations=(20, 20))
    features = itk_suits.register(fixed, moving, metric="features", **options).displacement_field
    calls = []
    force = optimizer.mutual_information_force
    monkeypatch.setattr(optimizer, "mutual_information_force", lambda *a, **k: calls.append(1) or force(*a, **k))
    coarse = itk_suits.register(fixed, moving, metric="features+mi", mi_weight=(1.0, 0.0), **options)
    assert 0 < len(calls) <= coarse.log[0]["iterations"]  # the coarse scale only
    calls.clear()
    silent = itk_suits.register(fixed, moving, metric="features+mi", mi_weight=0.0, **options).displacement_field
    assert not calls
    assert np.array_equal(silent, features)
    assert not np.allclose(coarse.displacement_field, features)


def test_the_default_metric_adds_mutual_information_to_volumes_only(monkeypatch):
    import itk_suits
    import itk_suits.core.optimizer as optimizer

    calls = []
    force = optimizer.mutual_information_force
    monkeypatch.setattr(optimizer, "mutual_information_force", lambda *a, **k: calls.append(1) or force(*a, **k))
    fixed, moving, _ = _known_multimodal_pair((40, 44), 2.0)
    flat = itk_suits.register(fixed, moving, grid_spacings=(12,), iterations=10)
    assert flat.parameters.metric == "features" and not calls
    volume = np.repeat(fixed[None], 20, axis=0)
    solid = itk_suits.register(volume, np.roll(volume, 1, axis=2), grid_spacings=(12,), iterations=10)
    assert solid.parameters.metric == "features+mi" and calls


@pytest.mark.parametrize("change", [dict(metric="ssd"), dict(mi_weight=-1.0), dict(mi_weight=(1.0, 0.5)),
                                    dict(mi_bins=2)])
def test_invalid_metric_settings_are_refused(change):
    import itk_suits
    from itk_suits.errors import ParameterError

    image = np.zeros((32, 32), np.float32)
    with pytest.raises(ParameterError, match="metric|mi_weight|mi_bins") as error:
        itk_suits.SuitsRegistrationMethod.New(image, image, **change).Update()
    if "metric" in change:
        assert "'features', 'mi', 'features+mi'" in str(error.value)


def test_batch_elements_of_a_mutual_information_descent_are_independent():
    from itk_suits.core import DescentSettings, MultiScaleDescent, Scale

    pairs = [_known_multimodal_pair((40, 44), 2.0, seed=s) for s in (3, 4)]
    fixed = torch.stack([torch.from_numpy(p[0])[None] for p in pairs])
    moving = torch.stack([torch.from_numpy(p[1])[None] for p in pairs])
    settings = DescentSettings(metric="mi")
    schedule = [Scale(10, 30, 0.2)]
    with torch.no_grad():
        together = MultiScaleDescent(None, None, schedule, settings, fixed_intensity=fixed,
                                     moving_intensity=moving).run()
        alone = MultiScaleDescent(None, None, schedule, settings, fixed_intensity=fixed[1:],
                                  moving_intensity=moving[1:]).run()
    assert torch.allclose(together[1:], alone, atol=1e-4)
