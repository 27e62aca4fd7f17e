"""Every error a user can cause is a clear SuitsError (or one CLI line), never a deep stack trace or NaN."""

import numpy as np
import pytest
import torch

import itk_suits
from itk_suits.cli import main
from itk_suits.errors import ParameterError, RegistrationError, ResourceError, SuitsError
from itk_suits.registration import resources

from conftest import phantom

FAST = dict(grid_spacings=(12, 8), iterations=(20, 20))
SIZE = (40, 44)


@pytest.fixture(scope="module")
def pair():
    return phantom(SIZE, seed=1), phantom(SIZE, seed=2)


# ---------------------------------------------------------------- parameters
BAD_PARAMETERS = [
    ({"learning_rate": float("inf")}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"learning_rate": 1e6}, "learning_rate"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"learning_rate": "fast"}, "learning_rate"),
    ({"tolerance": float("nan")}, "tolerance"),
    ({"tolerance": 5.0}, "tolerance"),
    ({"tolerance": -0.1}, "tolerance"),
    ({"smoothness": float("inf")}, "smoothness"),
    ({"smoothness": (0.2, float("nan"))}, "smoothness"),
    ({"smoothness": 1e9}, "smoothness"),
    ({"smoothness": -1.0}, "smoothness"),
    ({"grid_spacings": (12, float("inf"))}, "grid_spacings"),
    ({"grid_spacings": (12, 1)}, "grid_spacings"),
    ({"grid_spacings": "12 8"}, "grid_spacings"),
    ({"grid_spacings": ()}, "grid_spacings"),
    ({"iterations": (20, 2.5)}, "iterations"),
    ({"iterations": (20, -1)}, "iterations"),
    ({"iterations": (20, 20, 20)}, "iterations"),
    ({"iterations": 10**9}, "iterations"),
    ({"threads": "a"}, "threads"),
    ({"threads": 0}, "threads"),
    ({"threads": 2.5}, "threads"),
    ({"threads": True}, "threads"),
    ({"device": "mps"}, "mps"),
    ({"device": "xpu:0"}, "xpu"),
    ({"device": "gpu"}, "gpu"),
    ({"device": 3}, "device"),
    ({"features": 42}, "feature"),
    ({"samples": 10}, "samples"),
    ({"samples": 1000.5}, "samples"),
    ({"channels": 0}, "channels"),
    ({"channels": "six"}, "channels"),
    ({"seed": -1}, "seed"),
]


@pytest.mark.parametrize("change, named", BAD_PARAMETERS, ids=[f"{k}={v!r}" for (c, _) in BAD_PARAMETERS
                                                                  for k, v in c.items()])
def test_bad_parameters_are_suits_errors_that_name_the_parameter(pair, change, named):
    with pytest.raises(SuitsError, match=named):
        itk_suits.register(*pair, **{**FAST, **change})


def test_parameters_are_checked_by_the_object_api_too(pair):
    method = itk_suits.SuitsRegistrationMethod.New(*pair, **FAST)
    method.SetLearningRate(float("nan"))
    with pytest.raises(ParameterError, match="learning_rate"):
        method.Update()
    with pytest.raises(ParameterError, match="the parameters are"):
        itk_suits.SuitsRegistrationMethod.New(*pair, learning_rat=0.01)


def test_cuda_index_beyond_the_gpus_present_is_refused(pair):
    with pytest.raises(ParameterError, match="CUDA"):
        itk_suits.register(*pair, device=f"cuda:{torch.cuda.device_count() + 3}", **FAST)


# ---------------------------------------------------------------- images
def test_bool_numpy_images_are_registered_as_0_1_images():
    fixed = phantom(SIZE, seed=1) > 0.5
    moving = np.roll(fixed, 2, axis=1)
    result = itk_suits.register(fixed, moving, **FAST)
    assert result.warped.dtype == np.float32 and np.isfinite(result.displacement_field).all()
    # the descent moves the shifted mask back: the mean x displacement points along the shift
    inside = fixed.astype(bool)
    assert result.displacement_field[..., 0][inside].mean() > 0.5


def test_big_endian_and_long_double_arrays_are_read_as_their_values():
    image = phantom(SIZE, seed=3)
    reference = itk_suits.register(image, image, **FAST).warped
    for dtype in (">f4", np.longdouble):
        warped = itk_suits.register(image.astype(dtype), image.astype(dtype), **FAST).warped
        np.testing.assert_allclose(warped, reference, atol=1e-5)


# ---------------------------------------------------------------- results
def test_a_non_finite_displacement_is_an_error_not_a_nan_result(pair, monkeypatch):
    from itk_suits.core import MultiScaleDescent

    original = MultiScaleDescent.run

    def diverging(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        self.coefficients = self.coefficients * float("nan")
        return result

    monkeypatch.setattr(MultiScaleDescent, "run", diverging)
    with pytest.raises(RegistrationError, match="non-finite"):
        itk_suits.register(*pair, **FAST)


# ---------------------------------------------------------------- memory
def test_memory_estimate_counts_images_and_the_larger_of_features_and_field_copies():
    from itk_suits.registration.inputs import FEATURE_VOXELS

    cpu = torch.device("cpu")
    estimate = resources.memory_estimate((100, 50, 20), 12, cpu)
    voxels = 100 * 50 * 20
    images = 4 * 4 * voxels                      # fixed, moving, resampled moving, warped: float32
    features = 2 * 12 * 4 * voxels               # fixed and moving features, float32
    field_copies = 2 * 3 * 8 * voxels            # the float64 field and the transform's copy
    assert estimate["host"] >= images + max(features, field_copies) and estimate["device"] == 0
    assert resources.memory_estimate((200, 50, 20), 12, cpu)["host"] == 2 * estimate["host"]
    gpu = resources.memory_estimate((100, 50, 20), 12, torch.device("cuda"))
    assert gpu["host"] >= images + field_copies and gpu["device"] >= features
    # beyond FEATURE_VOXELS the features live on a coarser grid: their share stops growing with the image
    large = resources.memory_estimate((512, 512, 300), 12, torch.device("cuda"))
    assert large["device"] <= 12 * resources.DEVICE_BYTES_PER_VOXEL_CHANNEL * FEATURE_VOXELS
    assert resources.memory_estimate((512, 512, 300), 12, cpu)["host"] < 8 * 2**30


def test_available_host_memory_is_measured_portably():
    free = resources.available_memory(torch.device("cpu"))
    assert 0 < free <= __import__("psutil").virtual_memory().total


def test_a_registration_that_cannot_fit_is_refused_before_any_work(pair, monkeypatch):
    need = resources.memory_estimate(SIZE[::-1], 6, torch.device("cpu"))["host"]
    monkeypatch.setattr(resources, "available_memory", lambda device: need - 1)
    with pytest.raises(ResourceError, match=r"\(44, 40\).*GiB"):
        itk_suits.register(*pair, device="cpu", **FAST)
    monkeypatch.setattr(resources, "available_memory", lambda device: need)
    assert np.isfinite(itk_suits.register(*pair, device="cpu", **FAST).displacement_field).all()


@pytest.mark.parametrize("raised", [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
    MemoryError(),
], ids=["cuda", "cpu-allocator", "python"])
def test_running_out_of_memory_is_a_resource_error_naming_the_image(pair, monkeypatch, raised):
    from itk_suits.core import MultiScaleDescent

    def out_of_memory(self, *args, **kwargs):
        raise raised

    monkeypatch.setattr(MultiScaleDescent, "run", out_of_memory)
    with pytest.raises(ResourceError, match=r"out of memory .*\(44, 40\).*downsample"):
        itk_suits.register(*pair, device="cpu", **FAST)


def test_other_runtime_errors_are_not_mistaken_for_memory(pair, monkeypatch):
    from itk_suits.core import MultiScaleDescent

    def broken(self, *args, **kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(MultiScaleDescent, "run", broken)
    with pytest.raises(RuntimeError, match="something else") as caught:
        itk_suits.register(*pair, device="cpu", **FAST)
    assert not isinstance(caught.value, SuitsError)


# ---------------------------------------------------------------- the command line
@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    import SimpleITK as sitk

    path = tmp_path_factory.mktemp("cli") / "t1.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(phantom(SIZE, seed=1)), str(path))
    return path


def _one_line_error(capsys, code, expected_code, pattern):
    err = capsys.readouterr().err.strip()
    assert code == expected_code, err
    assert len(err.splitlines()) == 1 and err.startswith("itk-suits: error:"), err
    assert "Traceback" not in err
    assert __import__("re").search(pattern, err), err


def test_cli_refuses_a_feature_image_format_that_cannot_hold_channels(image_file, tmp_path, capsys):
    code = main(["features", str(image_file), "-o", str(tmp_path / "feats.png")])
    _one_line_error(capsys, code, 2, r"feats\.png.*\.nii\.gz")
    assert not (tmp_path / "feats.png").exists()


def test_cli_reports_an_unwritable_output_in_one_line(image_file, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(["register", str(image_file), str(image_file), "-o", str(blocker / "out"), "--quiet"])
    _one_line_error(capsys, code, 2, "file")


def test_cli_reports_bad_parameters_in_one_line(image_file, tmp_path, capsys):
    code = main(["register", str(image_file), str(image_file), "-o", str(tmp_path / "o"), "--learning-rate",
                 "inf", "--quiet"])
    _one_line_error(capsys, code, 2, "learning_rate")
    code = main(["register", str(image_file), str(image_file), "-o", str(tmp_path / "o"), "--device", "mps",
                 "--quiet"])
    _one_line_error(capsys, code, 2, "mps")


def test_cli_turns_an_unexpected_failure_into_one_line(image_file, tmp_path, capsys, monkeypatch):
    import SimpleITK as sitk

    def failing_write(*args, **kwargs):
        raise RuntimeError("Exception thrown in SimpleITK ImageFileWriter_Execute:\n"
                           "/src/sitkImageFileWriter.cxx:123:\nsitk::ERROR: disk quota exceeded")

    monkeypatch.setattr(sitk, "WriteImage", failing_write)
    monkeypatch.delenv("ITK_SUITS_TRACEBACK", raising=False)
    code = main(["features", str(image_file), "-o", str(tmp_path / "f.nii.gz")])
    _one_line_error(capsys, code, 1, "RuntimeError: sitk::ERROR: disk quota exceeded.*ITK_SUITS_TRACEBACK")


def test_cli_reports_running_out_of_memory_in_one_line(image_file, tmp_path, capsys, monkeypatch):
    from itk_suits.core import MultiScaleDescent

    def out_of_memory(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(MultiScaleDescent, "run", out_of_memory)
    code = main(["register", str(image_file), str(image_file), "-o", str(tmp_path / "o"), "--quiet",
                 "--grid-spacings", "12", "8", "--iterations", "5"])
    _one_line_error(capsys, code, 2, r"out of memory.*\(44, 40\)")
