"""Tests of the ANTs and ConvexAdam peers run by interpreters of their own.

Without antspyx or convexadam installed, the worker protocol runs against fake
peer packages (tiny modules written here that return a known transform) put
on the path of a fake interpreter; the end-to-end tests run only where
``ITK_SUITS_ANTS_PYTHON`` / ``ITK_SUITS_CONVEXADAM_PYTHON`` name a real one.
"""

import importlib.util
import os
import stat
import sys
import textwrap

import numpy as np
import pytest
import SimpleITK as sitk

from itk_suits.errors import ParameterError, SuitsError
from itk_suits.evaluation import (
    AntsUnavailable,
    ConvexAdamUnavailable,
    PeerUnavailable,
    compare,
    find_ants,
    find_convexadam,
    run_ants,
    run_convexadam,
)
from itk_suits.evaluation import ants as ants_peer
from itk_suits.evaluation import convexadam as convexadam_peer
from itk_suits.evaluation.convexadam import working_grid

from conftest import voxel_points

#: Fixed point x maps to moving point x + SHIFT_MM in the phantoms below.
SHIFT_MM = np.array([3.0, -4.0])
ANGLE = 0.3


def oblique_grid(size, spacing, origin=None):
    """An empty float32 image with anisotropic spacing and a rotated (non-identity) direction."""
    image = sitk.Image(list(size), sitk.sitkFloat32)
    ndim = len(size)
    c, s = np.cos(ANGLE), np.sin(ANGLE)
    rotation = np.eye(ndim)
    rotation[:2, :2] = [[c, -s], [s, c]]
    image.SetSpacing(spacing)
    image.SetOrigin(origin if origin is not None else [5.0, -3.0, 2.0][:ndim])
    image.SetDirection(rotation.ravel().tolist())
    return image


def blob_pair(shift_mm=SHIFT_MM):
    """Fixed: two Gaussian blobs on an oblique 72x64 grid of 1x2 mm; moving: the same content moved by ``shift_mm``."""
    grid = oblique_grid((72, 64), (1.0, 2.0))
    y, x = np.mgrid[0:64, 0:72]
    blobs = np.exp(-(((x - 36) / 8.0) ** 2 + ((y - 30) / 6.0) ** 2))
    blobs += 0.5 * np.exp(-(((x - 20) / 5.0) ** 2 + ((y - 45) / 5.0) ** 2))
    fixed = sitk.GetImageFromArray(blobs.astype(np.float32))
    fixed.CopyInformation(grid)
    moving = sitk.Resample(fixed, fixed, sitk.TranslationTransform(2, [-v for v in shift_mm]), sitk.sitkLinear, 0.0)
    return fixed, moving


def central(field, margin=0.3):
    """The vectors of the central part of a field array ``(*shape, ndim)``."""
    region = tuple(slice(int(margin * n), int((1 - margin) * n)) for n in field.shape[:-1])
    return field[region].reshape(-1, field.shape[-1])


def load_worker(name):
    path = os.path.join(os.path.dirname(convexadam_peer.__file__), f"_{name}_worker.py")
    spec = importlib.util.spec_from_file_location(f"_{name}_worker", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the ConvexAdam worker's conversions (numpy and SimpleITK only) -------------------------------


def test_convexadam_voxel_displacement_becomes_millimetres_in_physical_space():
    worker = load_worker("convexadam")
    grid = oblique_grid((5, 4, 3), (0.7, 1.3, 2.9))
    displacement = np.zeros((3, 4, 5, 3))
    displacement[..., 0] = 1.0  # one voxel along array axis 0 = index z
    displacement[..., 2] = -2.0  # two voxels back along array axis 2 = index x
    field = worker.physical_field(displacement, grid)
    assert field.GetSize() == grid.GetSize() and field.GetDirection() == grid.GetDirection()
    assert field.GetOrigin() == grid.GetOrigin() and field.GetSpacing() == grid.GetSpacing()
    start = np.array(grid.TransformContinuousIndexToPhysicalPoint((1.0, 1.0, 1.0)))
    end = np.array(grid.TransformContinuousIndexToPhysicalPoint((1.0 - 2.0, 1.0, 1.0 + 1.0)))
    np.testing.assert_allclose(sitk.GetArrayFromImage(field)[1, 1, 1], end - start, atol=1e-12)


def test_convexadam_2d_slices_are_stacked_and_the_middle_slice_kept_in_plane():
    worker = load_worker("convexadam")
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    volume = worker.as_volume(image, 6)
    assert volume.shape == (6, 3, 4) and np.all(volume == image)
    assert worker.as_volume(np.zeros((2, 3, 4)), 6).shape == (2, 3, 4)
    displacement = np.zeros((6, 3, 4, 3))
    displacement[..., 0] = 5.0  # through the stack: dropped
    displacement[3, ..., 1], displacement[3, ..., 2] = 1.5, -0.5
    np.testing.assert_array_equal(worker.in_plane(displacement, 2), np.broadcast_to([1.5, -0.5], (3, 4, 2)))


def test_convexadam_working_grid_is_isotropic_covers_the_fixed_image_and_keeps_its_frame():
    fixed = oblique_grid((40, 30, 7), (1.0, 1.0, 3.0))
    grid = working_grid(fixed)
    expected = 3.0 ** (1 / 3)  # geometric mean: the voxel count is kept
    np.testing.assert_allclose(grid.GetSpacing(), [expected] * 3)
    assert grid.GetOrigin() == fixed.GetOrigin() and grid.GetDirection() == fixed.GetDirection()
    assert all(n % 6 == 0 for n in grid.GetSize())
    covered = np.array(grid.GetSize()) * grid.GetSpacing()
    assert np.all(covered >= np.array(fixed.GetSize()) * fixed.GetSpacing())
    assert np.all(covered < np.array(fixed.GetSize()) * fixed.GetSpacing() + 6 * expected)
    assert working_grid(fixed, spacing=1.0, multiple=2).GetSize() == (40, 30, 22)


# --- fake peer interpreters: the worker protocol without antspyx or convexadam ------------------------


FAKE_ANTS = '''
"""A stand-in for antspyx: registration finds nothing but the translation SHIFT (mm) in every case."""
import SimpleITK as sitk

__version__ = "0.0-fake"
SHIFT = {shift}


def image_read(path):
    return sitk.ReadImage(path)


def registration(fixed, moving, type_of_transform, mask=None, outprefix="", **options):
    field = sitk.TransformToDisplacementField(
        sitk.TranslationTransform(fixed.GetDimension(), SHIFT), sitk.sitkVectorFloat64, fixed.GetSize(),
        fixed.GetOrigin(), fixed.GetSpacing(), fixed.GetDirection())
    sitk.WriteImage(field, outprefix + "1Warp.nii.gz")
    return {{"fwdtransforms": [outprefix + "1Warp.nii.gz"]}}


def apply_transforms(fixed, moving, transformlist, compose=None):
    sitk.WriteImage(sitk.ReadImage(transformlist[0]), compose + "comptx.nii.gz")
    return compose + "comptx.nii.gz"
'''

FAKE_ANTS_CONFIG = '''
def set_ants_deterministic(on=True, seed_value=123):
    pass
'''

FAKE_TORCH = '''
"""The little of torch the ConvexAdam worker touches (importing the real one takes seconds)."""
float32 = "float32"


def device(name):
    return name


def from_numpy(array):
    return array


def set_num_threads(count):
    pass
'''

FAKE_CONVEXADAM = '''
"""A stand-in for convexAdam: a constant displacement VOXELS (array order) in every case."""
import numpy as np

VOXELS = {voxels}


def convex_adam_pt(img_fixed, img_moving, device=None, dtype=None, **options):
    assert img_fixed.shape == img_moving.shape and img_fixed.ndim == 3
    return np.broadcast_to(np.array(VOXELS, dtype=float), (*img_fixed.shape, 3)).copy()
'''


def fake_interpreter(folder, modules):
    """An executable that runs this Python with only ``modules`` ({relative path: source}) added to its path."""
    library = folder / "lib"
    for relative, source in modules.items():
        path = library / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    script = folder / "python"
    script.write_text(f'#!/bin/sh\nPYTHONPATH="{library}" exec "{sys.executable}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.fixture
def fake_ants(tmp_path):
    return fake_interpreter(tmp_path, {
        "ants/__init__.py": FAKE_ANTS.format(shift=[float(v) for v in SHIFT_MM]),
        "ants/config.py": FAKE_ANTS_CONFIG,
    })


@pytest.fixture
def fake_convexadam(tmp_path):
    return fake_interpreter(tmp_path, {
        "torch.py": FAKE_TORCH,
        "convexAdam/__init__.py": "",
        "convexAdam/convex_adam_MIND.py": FAKE_CONVEXADAM.format(voxels=[7.0, 0.5, -1.0]),
        "convexadam-0.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: convexadam\nVersion: 0.0\n",
    })


def test_ants_worker_field_comes_back_in_mm_on_the_oblique_anisotropic_fixed_grid(fake_ants):
    interpreter, reason = find_ants(fake_ants)
    assert interpreter is not None and "0.0-fake" in reason
    fixed, moving = blob_pair()
    result = run_ants(fixed, moving, python=fake_ants)
    field = result.displacement_field
    assert field.GetSize() == fixed.GetSize() and field.GetDirection() == fixed.GetDirection()
    np.testing.assert_allclose(field.GetSpacing(), fixed.GetSpacing())
    np.testing.assert_allclose(sitk.GetArrayFromImage(field).reshape(-1, 2), np.broadcast_to(SHIFT_MM, (72 * 64, 2)),
                               atol=1e-4)
    points = voxel_points(fixed)[::97]
    mapped = np.array([result.transform.TransformPoint(p) for p in points.tolist()])
    np.testing.assert_allclose(mapped - points, np.broadcast_to(SHIFT_MM, points.shape), atol=1e-4)
    assert np.abs(sitk.GetArrayFromImage(result.warped - fixed))[16:48, 18:54].max() < 0.05
    assert result.seconds >= 0


def test_ants_result_includes_the_initial_transform(fake_ants):
    fixed, moving = blob_pair()
    guess = sitk.TranslationTransform(2, (1.0, 2.0))
    result = run_ants(fixed, moving, python=fake_ants, initial_transform=guess)
    np.testing.assert_allclose(central(sitk.GetArrayFromImage(result.displacement_field)),
                               np.broadcast_to(SHIFT_MM + [1.0, 2.0], (len(central(np.zeros((64, 72, 2)))), 2)),
                               atol=1e-4)


def test_convexadam_worker_field_is_converted_from_working_voxels_to_fixed_millimetres(fake_convexadam):
    interpreter, reason = find_convexadam(fake_convexadam)
    assert interpreter is not None and "0.0" in reason
    fixed, moving = blob_pair()
    result = run_convexadam(fixed, moving, python=fake_convexadam)
    step = working_grid(fixed).GetSpacing()[0]
    assert step == pytest.approx(np.sqrt(2.0))
    # the fake returns (7, 0.5, -1) voxels in volume array order (stack, y, x): in plane x -1, y +0.5 voxels
    expected = np.reshape(fixed.GetDirection(), (2, 2)) @ (step * np.array([-1.0, 0.5]))
    field = result.displacement_field
    assert field.GetSize() == fixed.GetSize() and field.GetDirection() == fixed.GetDirection()
    np.testing.assert_allclose(sitk.GetArrayFromImage(field).reshape(-1, 2), np.broadcast_to(expected, (72 * 64, 2)),
                               atol=1e-6)


def test_compare_runs_the_peers_and_records_their_settings(fake_ants, fake_convexadam):
    fixed, moving = blob_pair()
    results = compare(fixed, moving, methods="ants,convexadam", ants_python=fake_ants,
                      convexadam_python=fake_convexadam, progress=False)
    methods = results["pairs"][0]["methods"]
    assert methods["ants"]["status"] == "ok" and methods["convexadam"]["status"] == "ok"
    assert methods["ants"]["settings"] == {"transform": "SyN", "reg_iterations": None}
    assert methods["convexadam"]["working_spacing_mm"] == pytest.approx(np.sqrt(2.0))
    assert methods["ants"]["folding_percent"] == 0.0
    assert "0.0-fake" in results["settings"]["ants"]


# --- missing interpreters, bad options ------------------------------------------------------------


@pytest.mark.parametrize("find, run, error, variable", [
    (find_ants, run_ants, AntsUnavailable, ants_peer.ENVIRONMENT_VARIABLE),
    (find_convexadam, run_convexadam, ConvexAdamUnavailable, convexadam_peer.ENVIRONMENT_VARIABLE),
])
def test_missing_peer_interpreter_is_reported_with_the_fix(monkeypatch, tmp_path, find, run, error, variable):
    monkeypatch.delenv(variable, raising=False)
    interpreter, reason = find()
    assert interpreter is None and variable in reason and "python -m venv" in reason
    fixed, moving = blob_pair()
    with pytest.raises(error, match=variable) as raised:
        run(fixed, moving)
    assert isinstance(raised.value, PeerUnavailable) and isinstance(raised.value, SuitsError)
    with pytest.raises(error, match="does not exist"):
        run(fixed, moving, python=str(tmp_path / "no-python"))


@pytest.mark.skipif(importlib.util.find_spec("ants") is not None, reason="antspyx is installed here")
def test_an_interpreter_without_the_peer_is_not_taken():
    interpreter, reason = find_ants(sys.executable)
    assert interpreter is None and "has no ANTs" in reason


def test_peer_options_are_checked_before_looking_for_the_interpreter(monkeypatch):
    monkeypatch.delenv(ants_peer.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.delenv(convexadam_peer.ENVIRONMENT_VARIABLE, raising=False)
    fixed, moving = blob_pair()
    with pytest.raises(ParameterError, match="reg_iterations"):
        run_ants(fixed, moving, reg_iterations=(40, -1))
    with pytest.raises(ParameterError, match="timeout"):
        run_ants(fixed, moving, timeout=0)
    with pytest.raises(ParameterError, match="unknown ConvexAdam options"):
        run_convexadam(fixed, moving, options={"iterations": 3})
    with pytest.raises(ParameterError, match="spacing"):
        run_convexadam(fixed, moving, spacing=-1.0)


def test_unconfigured_peers_are_skipped_in_a_comparison(monkeypatch):
    monkeypatch.delenv(ants_peer.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.delenv(convexadam_peer.ENVIRONMENT_VARIABLE, raising=False)
    fixed, moving = blob_pair()
    results = compare(fixed, moving, methods=("ants", "convexadam"), progress=False)
    for name, variable in (("ants", ants_peer.ENVIRONMENT_VARIABLE), ("convexadam", convexadam_peer.ENVIRONMENT_VARIABLE)):
        entry = results["pairs"][0]["methods"][name]
        assert entry["status"] == "skipped" and variable in entry["reason"]


# --- end to end with the real peers (only where their interpreters are configured) ---------------------


def require(find):
    interpreter, reason = find()
    if interpreter is None:
        pytest.skip(f"peer not configured: {reason}")


def test_ants_recovers_a_translation_on_an_oblique_anisotropic_grid():
    require(find_ants)
    fixed, moving = blob_pair()
    result = run_ants(fixed, moving)
    field = central(sitk.GetArrayFromImage(result.displacement_field))
    np.testing.assert_allclose(np.median(field, axis=0), SHIFT_MM, atol=0.5)
    assert result.seconds > 0


def test_ants_full_resolution_variant_with_an_initial_transform():
    require(find_ants)
    fixed, moving = blob_pair()
    guess = sitk.TranslationTransform(2, tuple(SHIFT_MM + [0.8, -0.6]))
    result = run_ants(fixed, moving, initial_transform=guess, **ants_peer.METHOD_SETTINGS["ants-full"])
    field = central(sitk.GetArrayFromImage(result.displacement_field))
    np.testing.assert_allclose(np.median(field, axis=0), SHIFT_MM, atol=0.5)


def test_convexadam_recovers_a_translation_on_an_oblique_anisotropic_grid():
    require(find_convexadam)
    fixed, moving = blob_pair()
    result = run_convexadam(fixed, moving)
    field = central(sitk.GetArrayFromImage(result.displacement_field))
    np.testing.assert_allclose(np.median(field, axis=0), SHIFT_MM, atol=1.0)
    assert result.seconds > 0


def test_convexadam_recovers_a_translation_in_3d_with_thick_slices():
    require(find_convexadam)
    grid = oblique_grid((36, 36, 12), (1.5, 1.5, 4.0))
    z, y, x = np.mgrid[0:12, 0:36, 0:36]
    blob = np.exp(-(((x - 18) / 5.0) ** 2 + ((y - 16) / 4.0) ** 2 + ((z - 6) / 2.0) ** 2)).astype(np.float32)
    fixed = sitk.GetImageFromArray(blob)
    fixed.CopyInformation(grid)
    shift = np.array([2.0, -3.0, 4.0])
    moving = sitk.Resample(fixed, fixed, sitk.TranslationTransform(3, tuple(-shift)), sitk.sitkLinear, 0.0)
    result = run_convexadam(fixed, moving)
    field = sitk.GetArrayFromImage(result.displacement_field)
    near_blob = field[blob > 0.5]
    np.testing.assert_allclose(np.median(near_blob, axis=0), shift, atol=1.5)
