"""The itk-suits command line and the known-deformation demo."""

import contextlib
import io
import json
import re

import numpy as np
import pytest
import SimpleITK as sitk

from itk_suits import __version__
from itk_suits.cli import build_parser, main
from itk_suits.demo import known_deformation
from itk_suits.schedule import DEFAULT_GRID_SPACINGS

FAST = ["--iterations", "20", "20", "20", "--quiet"]
SAVED_FILES = ("warped.nii.gz", "displacement.nii.gz", "transform.h5", "checkerboard.png", "parameters.json")


def _blobs(shape, spacing, origin=None, centre_shift=(0.0, 0.0, 0.0)):
    """A smooth phantom: Gaussian blobs of different sizes and intensities, float32."""
    ndim = len(shape)
    grid = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    array = np.zeros(shape)
    rng = np.random.default_rng(3)
    for _ in range(6):
        centre = [rng.uniform(0.3, 0.7) * n + centre_shift[axis] for axis, n in enumerate(shape)]
        sigma = rng.uniform(4.0, 7.0)
        distance = sum((g - c) ** 2 for g, c in zip(grid, centre))
        array += rng.uniform(50.0, 150.0) * np.exp(-distance / (2.0 * sigma**2))
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin(origin if origin is not None else (0.0,) * ndim)
    return image


@pytest.fixture
def image_files(tmp_path):
    """A fixed .nii.gz and a shifted, contrast-inverted moving .mha, 2D, anisotropic spacing."""
    fixed = _blobs((72, 64), (1.0, 1.2), origin=(-3.0, 5.0))
    moving = _blobs((72, 64), (1.0, 1.2), origin=(-3.0, 5.0), centre_shift=(2.0, -2.0))
    moving = 255.0 - moving
    fixed_path, moving_path = tmp_path / "fixed.nii.gz", tmp_path / "moving.mha"
    sitk.WriteImage(fixed, str(fixed_path))
    sitk.WriteImage(moving, str(moving_path))
    return fixed_path, moving_path


def test_version_is_printed(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"itk-suits {__version__}"


def test_a_command_is_required(capsys):
    assert main([]) == 2
    assert "required" in capsys.readouterr().err


def test_register_help_states_the_library_defaults():
    from itk_suits import schedule

    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    helps = {a.dest: a.help for a in subparsers.choices["register"]._actions}
    spacings = " ".join(f"{v:g}" for v in schedule.DEFAULT_GRID_SPACINGS)
    assert f"(default: {spacings})" in helps["grid_spacings"]
    assert f"(default: {schedule.DEFAULT_ITERATIONS} " in helps["iterations"]
    assert f"(default: {schedule.COARSE_SMOOTHNESS:g} on the coarse scales, {schedule.FINE_SMOOTHNESS:g} " \
           "on the finest)" in helps["smoothness"]
    assert f"(default: {schedule.DEFAULT_LEARNING_RATE:g})" in helps["learning_rate"]


def test_register_writes_a_transform_that_reproduces_the_warped_image(image_files, tmp_path, capsys):
    fixed_path, moving_path = image_files
    out = tmp_path / "out"
    code = main(["register", str(fixed_path), str(moving_path), "-o", str(out), *FAST])
    printed = capsys.readouterr().out
    assert code == 0
    for name in SAVED_FILES:
        assert (out / name).is_file(), name
        assert str(out / name) in printed
    assert re.search(r"iterations per scale: \d+ \d+ \d+", printed)

    fixed = sitk.ReadImage(str(fixed_path), sitk.sitkFloat32)
    moving = sitk.ReadImage(str(moving_path), sitk.sitkFloat32)
    transform = sitk.ReadTransform(str(out / "transform.h5"))
    resampled = sitk.Resample(moving, fixed, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    written = sitk.ReadImage(str(out / "warped.nii.gz"), sitk.sitkFloat32)
    assert written.GetOrigin() == pytest.approx(fixed.GetOrigin())
    assert written.GetSpacing() == pytest.approx(fixed.GetSpacing())
    difference = sitk.GetArrayFromImage(resampled) - sitk.GetArrayFromImage(written)
    assert np.abs(difference).max() < 1e-3
    displacement = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "displacement.nii.gz")))
    assert np.abs(displacement).max() > 0.1  # the registration moved something

    record = json.loads((out / "parameters.json").read_text())
    assert record["itk_suits_version"] == __version__
    assert record["parameters"]["iterations"] == [20, 20, 20]
    assert record["parameters"]["grid_spacings"] == list(DEFAULT_GRID_SPACINGS)
    assert [entry["iterations"] for entry in record["log"]] == [int(v) for v in re.search(
        r"iterations per scale: ([\d ]+)", printed).group(1).split()]
    assert record["fixed"]["spacing"] == pytest.approx(list(fixed.GetSpacing()))
    assert record["fixed"]["direction"] == pytest.approx(list(fixed.GetDirection()))


def test_register_refuses_to_overwrite_without_the_flag(image_files, tmp_path, capsys):
    fixed_path, moving_path = image_files
    out = tmp_path / "out"
    arguments = ["register", str(fixed_path), str(moving_path), "-o", str(out), *FAST]
    assert main(arguments) == 0
    first = (out / "transform.h5").stat().st_mtime_ns
    capsys.readouterr()

    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert error.startswith("itk-suits: error:") and "--overwrite" in error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1
    assert (out / "transform.h5").stat().st_mtime_ns == first

    assert main([*arguments, "--overwrite"]) == 0


def test_register_reports_a_missing_input_file_in_one_line(image_files, tmp_path, capsys):
    fixed_path, _ = image_files
    missing = tmp_path / "nowhere.nii.gz"
    code = main(["register", str(fixed_path), str(missing), "-o", str(tmp_path / "out"), *FAST])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("itk-suits: error:") and str(missing) in error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_register_reports_a_bad_parameter_in_one_line(image_files, tmp_path, capsys):
    fixed_path, moving_path = image_files
    code = main(["register", str(fixed_path), str(moving_path), "-o", str(tmp_path / "out"),
                 "--iterations", "20", "20", "--quiet"])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("itk-suits: error:") and "iterations" in error
    assert "Traceback" not in error


@pytest.mark.parametrize("ndim", [2, 3])
def test_known_deformation_is_undone_by_resampling_with_its_field(ndim):
    shape = (64, 56) if ndim == 2 else (28, 32, 30)
    spacing = (0.8, 1.3, 1.1)[:ndim]
    image = _blobs(shape, spacing, origin=(4.0, -2.0, 1.0)[:ndim])
    moving, u = known_deformation(image, magnitude=4.0, control_spacing=24.0, seed=1)

    assert u.shape == (ndim, *shape)
    assert np.linalg.norm(u, axis=0).max() == pytest.approx(4.0, rel=1e-4)
    assert moving.GetSpacing() == image.GetSpacing() and moving.GetOrigin() == image.GetOrigin()
    # Resample moving at p + u(p) with ITK's own DisplacementFieldTransform (u in mm).
    millimetres = np.moveaxis(u, 0, -1) * np.asarray(spacing)
    field = sitk.GetImageFromArray(millimetres, isVector=True)
    field.CopyInformation(image)
    transform = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    recovered = sitk.GetArrayFromImage(sitk.Resample(moving, image, transform, sitk.sitkLinear))

    original = sitk.GetArrayFromImage(image)
    interior = (slice(6, -6),) * ndim
    peak = original.max()
    assert np.abs(recovered - original)[interior].max() < 0.03 * peak
    assert np.abs(sitk.GetArrayFromImage(moving) - original)[interior].max() > 0.2 * peak


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One short ``itk-suits demo`` run: exit code, stdout, output directory."""
    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["demo", "-o", str(out), "--iterations", "40", "40", "40", "--quiet"])
    return code, printed.getvalue(), out


def test_demo_writes_its_figure_and_the_registration_files(demo_run):
    code, printed, out = demo_run
    assert code == 0
    assert (out / "demo.png").stat().st_size > 10_000
    for name in SAVED_FILES:
        assert (out / name).is_file(), name
    assert f"figure: {out / 'demo.png'}" in printed


def test_demo_reports_a_smaller_error_after_registration(demo_run):
    _, printed, _ = demo_run
    number = r"([0-9.]+)"
    match = re.search(
        rf"before: mean {number} mm, p95 {number} mm / after: mean {number} mm, p95 {number} mm", printed
    )
    assert match, printed
    before_mean, before_p95, after_mean, after_p95 = map(float, match.groups())
    assert before_mean > 1.0
    assert after_mean < 0.7 * before_mean
    assert after_p95 < before_p95
    assert re.search(r"folding: [0-9.]+ %", printed)
