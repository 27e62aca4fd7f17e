"""FeatureCNN, ONNX export and the onnxruntime feature extractor, feature images, model folders."""

import json
import shutil
import warnings

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import itk_suits
from itk_suits.cli import main
from itk_suits.errors import InputImageError, ParameterError, SuitsError
from itk_suits.features import (
    FeatureCNN,
    FeatureExtractor,
    FeaturePair,
    ONNXFeatureExtractor,
    compare_onnx_to_torch,
    export_onnx,
    get_feature_extractor,
    load_torch_weights,
    mind_ssc,
    normalize_intensities,
    read_model_card,
)
from itk_suits.features.model import (
    file_sha256,
    pretrained_model_dir,
    verify_model_files,
    weights_dict,
)
from itk_suits.features.registry import PretrainedFeatures

from conftest import phantom, remap_nonmonotonic


def _pair(ndim, shared=False, seed=0):
    torch.manual_seed(seed)
    return FeaturePair(ndim, shared=shared).eval()


@pytest.fixture(scope="module")
def model_2d(tmp_path_factory):
    """An untrained 2D model with one network per modality, exported."""
    pair = _pair(2)
    return pair, export_onnx(pair, tmp_path_factory.mktemp("models") / "two_d", name="test-2d")


@pytest.fixture(scope="module")
def model_3d(tmp_path_factory):
    """An untrained 3D model with one shared network, exported."""
    pair = _pair(3, shared=True, seed=1)
    return pair, export_onnx(pair, tmp_path_factory.mktemp("models") / "three_d")


def _copy_model(source, destination):
    shutil.copytree(source, destination)
    return destination


def _raw_export(module, path, dynamic):
    """Replace an ONNX file with ``module`` exported for [1, 1, 16, 16] inputs, sizes dynamic or fixed."""
    axes = {"image": {0: "b", 2: "h", 3: "w"}, "features": {0: "b", 2: "h", 3: "w"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 1, 16, 16),), str(path), dynamo=False,
                          input_names=["image"], output_names=["features"], dynamic_axes=axes)


def _rewrite_card(directory, **changes):
    path = directory / "model.json"
    card = json.loads(path.read_text())
    card.update(changes)
    path.write_text(json.dumps(card))


# --- the network -----------------------------------------------------------------------


@pytest.mark.parametrize("ndim, shape", [(2, (2, 1, 21, 34)), (3, (1, 1, 9, 14, 11))])
def test_feature_cnn_keeps_the_grid_and_gives_eight_channels(ndim, shape):
    network = FeatureCNN(ndim)
    features = network(torch.rand(shape))
    assert features.shape == (shape[0], 8) + shape[2:]
    assert network.out_channels == 8


@pytest.mark.parametrize("ndim", [2, 3])
def test_feature_cnn_has_the_papers_layers(ndim):
    network = FeatureCNN(ndim)
    convolutions = [m for m in network.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
    norms = [m for m in network.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert [(c.kernel_size[0], c.out_channels) for c in convolutions] == [
        (7, 4), (7, 6), (5, 6), (5, 8), (5, 8), (3, 8), (3, 8)
    ]
    assert all(len(c.kernel_size) == ndim for c in convolutions)
    assert [c.bias is not None for c in convolutions] == [False] * 6 + [True]
    assert len(norms) == 6 and all(n.num_groups == 2 for n in norms)
    assert sum(isinstance(m, torch.nn.Tanh) for m in network.modules()) == 6
    assert isinstance(network.layers[-1], (torch.nn.Conv2d, torch.nn.Conv3d))  # no activation at the end


def test_feature_cnn_refuses_an_image_of_the_other_dimension():
    with pytest.raises(InputImageError, match="2D"):
        FeatureCNN(2)(torch.rand(1, 1, 8, 8, 8))
    with pytest.raises(ParameterError, match="ndim"):
        FeatureCNN(4)


def test_pair_has_one_network_per_role_or_one_shared():
    image = torch.rand(1, 1, 24, 20)
    separate, shared = _pair(2), _pair(2, shared=True)
    assert set(separate.networks) == {"fixed", "moving"} and set(shared.networks) == {"shared"}
    assert not torch.equal(separate(image, "fixed"), separate(image, "moving"))
    assert torch.equal(shared(image, "fixed"), shared(image, "moving"))
    with pytest.raises(ParameterError, match="role"):
        separate(image, "ct")


def test_pair_features_do_not_depend_on_the_intensity_scale():
    """The input normalisation maps each image's robust range to [0, 1]."""
    image = torch.rand(1, 1, 30, 30)
    pair = _pair(2)
    torch.testing.assert_close(pair(image), pair(1000.0 * image - 300.0), atol=1e-5, rtol=1e-5)
    normalized = normalize_intensities(1000.0 * image)
    assert normalized.min() == 0 and normalized.max() == 1


# --- ONNX --------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["model_2d", "model_3d"])
def test_onnx_matches_torch_on_sizes_other_than_the_export_size(fixture, request):
    pair, directory = request.getfixturevalue(fixture)
    shape = (2, 1, 37, 52) if pair.ndim == 2 else (2, 1, 13, 21, 17)
    image = 500.0 * torch.rand(shape)
    extractor = ONNXFeatureExtractor(directory, providers="cpu")
    for role in ("fixed", "moving"):
        onnx_features = extractor(image, role=role)
        with torch.no_grad():
            torch_features = pair(image, role=role)
        assert onnx_features.shape == torch_features.shape == (2, 8) + shape[2:]
        assert (onnx_features - torch_features).abs().max() < 1e-4
    assert compare_onnx_to_torch(pair, directory) < 1e-4
    assert read_model_card(directory).onnx_max_abs_difference < 1e-4


def test_single_network_exports_to_one_file_with_dynamic_axes(tmp_path):
    network = FeatureCNN(2).eval()
    path = export_onnx(network, tmp_path / "net.onnx")
    assert compare_onnx_to_torch(network, path, shape=(23, 58)) < 1e-4
    with pytest.raises(FileExistsError):
        export_onnx(network, path)
    with pytest.raises(ParameterError, match="3"):
        export_onnx(network, tmp_path / "other.onnx", ndim=3)


def test_model_card_records_what_the_folder_holds(model_2d, model_3d):
    _, directory = model_2d
    card = read_model_card(directory)
    assert (card.name, card.ndim, card.channels, card.shared) == ("test-2d", 2, 8, False)
    assert card.roles == {"fixed": "fixed.onnx", "moving": "moving.onnx"} and card.networks == {}
    assert card.sha256["fixed.onnx"] == file_sha256(directory / "fixed.onnx")
    assert card.input_normalization["percentiles"] == [0.5, 99.5]
    assert card.torch_weights == "model.pt" and (directory / "model.pt").is_file()
    shared = read_model_card(model_3d[1])
    assert shared.networks == {"any": "shared.onnx"} and shared.roles is None and shared.shared


def test_torch_weights_round_trip_and_checkpoints_are_accepted(model_2d, tmp_path):
    pair, directory = model_2d
    loaded, fields = load_torch_weights(directory / "model.pt")
    image = torch.rand(1, 1, 20, 20)
    with torch.no_grad():
        assert torch.equal(loaded(image, "moving"), pair(image, "moving"))
    assert fields["name"] == "test-2d"
    torch.save({"model": weights_dict(pair), "step": 10}, tmp_path / "checkpoint.pt")
    assert load_torch_weights(tmp_path / "checkpoint.pt")[0].ndim == 2
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ParameterError, match="no itk-suits feature weights"):
        load_torch_weights(tmp_path / "other.pt")


# --- mismatched and damaged models -------------------------------------------------------


def test_corrupted_onnx_file_is_rejected(model_2d, tmp_path):
    directory = _copy_model(model_2d[1], tmp_path / "damaged")
    data = bytearray((directory / "moving.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (directory / "moving.onnx").write_bytes(bytes(data))
    with pytest.raises(ParameterError, match="moving.onnx is corrupted"):
        ONNXFeatureExtractor(directory)


def test_missing_files_are_rejected(model_2d, tmp_path):
    directory = _copy_model(model_2d[1], tmp_path / "incomplete")
    (directory / "fixed.onnx").unlink()
    with pytest.raises(ParameterError, match="missing fixed.onnx"):
        get_feature_extractor(str(directory))
    (directory / "model.json").unlink()
    with pytest.raises(ParameterError, match="missing model.json"):
        get_feature_extractor(str(directory))
    with pytest.raises(ParameterError, match="no such folder"):
        get_feature_extractor(str(tmp_path / "nowhere"))


def test_a_2d_model_refuses_3d_images(model_2d, tmp_path):
    extractor = ONNXFeatureExtractor(model_2d[1])
    with pytest.raises(ParameterError, match="is 2D and cannot describe 3D images"):
        extractor(torch.rand(1, 1, 8, 8, 8))
    with pytest.raises(ParameterError, match="is 2D and cannot describe 3D images"):
        extractor.channels(3)
    # a card that claims another dimension than its networks have
    directory = _copy_model(model_2d[1], tmp_path / "wrong_ndim")
    _rewrite_card(directory, ndim=3)
    with pytest.raises(ParameterError, match="a 2D network.*ndim=3"):
        ONNXFeatureExtractor(directory)


def test_fixed_and_moving_networks_with_different_channels_are_rejected(model_2d, tmp_path):
    directory = _copy_model(model_2d[1], tmp_path / "mismatch")
    moving = directory / "moving.onnx"
    _raw_export(torch.nn.Conv2d(1, 6, 3, padding=1), moving, dynamic=True)
    card = json.loads((directory / "model.json").read_text())
    _rewrite_card(directory, sha256={**card["sha256"], "moving.onnx": file_sha256(moving)})
    with pytest.raises(ParameterError, match=r"moving.onnx gives 6.*says 8"):
        ONNXFeatureExtractor(directory)


def test_onnxruntime_failures_become_package_errors(model_2d, tmp_path):
    """A network exported with a fixed size fails inside onnxruntime on other sizes."""
    directory = _copy_model(model_2d[1], tmp_path / "static")
    for name in ("fixed", "moving"):
        _raw_export(FeatureCNN(2).eval(), directory / f"{name}.onnx", dynamic=False)
    _rewrite_card(directory, sha256={f"{n}.onnx": file_sha256(directory / f"{n}.onnx") for n in ("fixed", "moving")})
    extractor = ONNXFeatureExtractor(directory)
    assert extractor(torch.rand(1, 1, 16, 16)).shape == (1, 8, 16, 16)
    with pytest.raises(SuitsError, match="onnxruntime failed computing fixed features"):
        extractor(torch.rand(1, 1, 20, 16))


def test_invalid_card_and_unknown_providers_are_rejected(model_2d, tmp_path):
    directory = _copy_model(model_2d[1], tmp_path / "bad_card")
    (directory / "model.json").write_text("{not json")
    with pytest.raises(ParameterError, match="not readable JSON"):
        ONNXFeatureExtractor(directory)
    with pytest.raises(ParameterError, match="onnxruntime-gpu|CUDA"):
        ONNXFeatureExtractor(model_2d[1], providers=["NoSuchExecutionProvider", "CUDAExecutionProvider"])


# --- the registry ------------------------------------------------------------------------


def test_mind_plus_model_concatenates_mind_and_learned_channels(model_2d):
    pair, directory = model_2d
    combined = get_feature_extractor(f"mind+{directory}")
    assert combined.channels(2) == 6 + 8
    image = torch.rand(1, 1, 30, 26)
    features = combined(image, role="moving")
    torch.testing.assert_close(features[:, :6], mind_ssc(image))
    with torch.no_grad():
        torch.testing.assert_close(features[:, 6:], pair(image, "moving"), atol=1e-4, rtol=0)


def test_unknown_names_and_missing_pretrained_model_are_clear_errors(tmp_path):
    with pytest.raises(ParameterError, match="'mind'.*'pretrained'.*model folder"):
        get_feature_extractor("sift")
    with pytest.raises(ParameterError, match="no pretrained model is shipped"):
        PretrainedFeatures(root=tmp_path)


@pytest.mark.parametrize("ndim", [2, 3])
def test_the_shipped_models_match_their_cards_keep_geometry_and_keep_identity(ndim):
    folder = pretrained_model_dir(ndim)
    card = read_model_card(folder)
    verify_model_files(folder, card)  # checksums of the ONNX files
    assert card.ndim == ndim and card.shared and card.training["command"].startswith("python benchmarks/")
    shape = (40, 44) if ndim == 2 else (24, 28, 26)
    image = sitk.GetImageFromArray(phantom(shape).astype(np.float32))
    image.SetSpacing((0.8, 1.1, 1.5)[:ndim])
    features = itk_suits.extract_features(image, model="pretrained", role="fixed")
    assert features.GetNumberOfComponentsPerPixel() == card.channels
    assert features.GetSpacing() == image.GetSpacing()
    result = itk_suits.register(image, image, features="pretrained", grid_spacings=(8,), iterations=30)
    field = sitk.GetArrayFromImage(result.displacement_field)
    assert np.abs(field).max() < 0.1 * min(image.GetSpacing())  # identity stays identity (mm)


def test_pretrained_lookup_picks_the_shipped_model_of_the_image_dimension(model_2d, model_3d, tmp_path):
    root = tmp_path / "models"
    _copy_model(model_2d[1], root / "a_planar")
    _copy_model(model_3d[1], root / "b_volume")
    assert pretrained_model_dir(3, root).name == "b_volume"
    extractor = PretrainedFeatures(root=root)
    assert extractor(torch.rand(1, 1, 10, 12, 9)).shape == (1, 8, 10, 12, 9)
    assert extractor(torch.rand(1, 1, 20, 18), role="moving").shape == (1, 8, 20, 18)


# --- feature images ------------------------------------------------------------------------


def _oblique_direction(ndim, angle=0.4):
    c, s = np.cos(angle), np.sin(angle)
    if ndim == 2:
        return (c, -s, s, c)
    return (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)


def test_sitk_feature_image_keeps_the_geometry(model_3d):
    array = phantom((12, 18, 16), seed=2)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 1.1, 2.5))
    image.SetOrigin((-4.0, 7.0, 12.5))
    image.SetDirection(_oblique_direction(3))
    features = itk_suits.extract_features(image, model=model_3d[1], role="moving")
    assert isinstance(features, sitk.Image) and features.GetNumberOfComponentsPerPixel() == 8
    for attribute in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(features, attribute)() == getattr(image, attribute)()
    with torch.no_grad():
        expected = model_3d[0](torch.from_numpy(array)[None, None], "moving")[0]
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(features), expected.permute(1, 2, 3, 0).numpy(), atol=1e-4
    )


def test_itk_feature_image_keeps_the_geometry():
    import itk

    array = phantom((30, 41), seed=3)
    image = itk.image_from_array(array)
    image.SetSpacing((0.6, 1.7))
    image.SetOrigin((3.0, -2.0))
    image.SetDirection(itk.matrix_from_array(np.reshape(_oblique_direction(2), (2, 2))))
    features = itk_suits.extract_features(image, model="mind")
    assert type(features).__name__.startswith("itkVectorImage")
    assert features.GetNumberOfComponentsPerPixel() == 6
    np.testing.assert_allclose(np.array(features.GetSpacing()), (0.6, 1.7))
    np.testing.assert_allclose(np.array(features.GetOrigin()), (3.0, -2.0))
    np.testing.assert_allclose(itk.array_from_matrix(features.GetDirection()),
                               np.reshape(_oblique_direction(2), (2, 2)))
    values = itk.array_from_image(features)
    assert values.shape == (30, 41, 6)
    np.testing.assert_allclose(values, mind_ssc(torch.from_numpy(array)[None, None])[0].permute(1, 2, 0), atol=1e-6)


def test_numpy_features_are_channels_last_and_the_filter_selects_the_role(model_2d):
    array = 100.0 * phantom((26, 33), seed=4)
    fixed = itk_suits.extract_features(array, model=model_2d[1])
    assert fixed.shape == (26, 33, 8) and fixed.dtype == np.float32
    feature_filter = itk_suits.SuitsFeatureImageFilter.New()
    feature_filter.SetInput(array)
    feature_filter.SetModel(model_2d[1])
    feature_filter.SetRole("moving")
    feature_filter.Update()
    moving = feature_filter.GetOutput()
    assert moving.shape == fixed.shape and not np.allclose(moving, fixed)
    with pytest.raises(ParameterError, match="role"):
        feature_filter.SetRole("t1")
    with pytest.raises(InputImageError, match="Update"):
        itk_suits.SuitsFeatureImageFilter.New(array).GetOutput()


# --- registration with learned features --------------------------------------------------


def _phantom_pair():
    fixed = phantom((48, 56), seed=5)
    moving = remap_nonmonotonic(np.roll(phantom((48, 56), seed=5), (2, -1), axis=(0, 1)))
    return fixed.astype(np.float32), moving.astype(np.float32)


FAST = dict(grid_spacings=(12, 6), iterations=5)


@pytest.mark.parametrize("prefix", ["", "mind+"])
def test_registration_runs_with_an_exported_model_folder(model_2d, prefix):
    fixed, moving = _phantom_pair()
    result = itk_suits.register(fixed, moving, features=f"{prefix}{model_2d[1]}", **FAST)
    assert result.warped.shape == fixed.shape
    assert np.isfinite(result.displacement_field).all()
    assert [entry["iterations"] for entry in result.log] == [5, 5]


def test_registration_asks_for_fixed_and_moving_features():
    calls = []

    class Spy(FeatureExtractor):
        name = "spy"

        def channels(self, ndim):
            return 1

        def __call__(self, image, role="fixed", modality=None):
            calls.append(role)
            return normalize_intensities(image)

    fixed, moving = _phantom_pair()
    itk_suits.register(fixed, moving, features=Spy(), **FAST)
    assert calls == ["fixed", "moving"]


def test_registration_with_a_2d_model_on_3d_images_is_refused_early(model_2d):
    volume = phantom((24, 24, 24), seed=6)
    with pytest.raises(ParameterError, match="2D and cannot describe 3D"):
        itk_suits.register(volume, volume, features=model_2d[1], grid_spacings=(8,), iterations=1)


# --- command line --------------------------------------------------------------------------


def test_cli_exports_weights_and_writes_feature_images(model_2d, tmp_path, capsys):
    model_dir = tmp_path / "exported"
    assert main(["export", str(model_2d[1] / "model.pt"), "-o", str(model_dir), "--name", "cli"]) == 0
    assert read_model_card(model_dir).name == "cli"
    assert "max abs difference" in capsys.readouterr().out
    image = sitk.GetImageFromArray(phantom((20, 25), seed=7))
    image.SetSpacing((0.5, 2.0))
    image.SetOrigin((1.0, 2.0))
    image_path, output = tmp_path / "image.nii.gz", tmp_path / "feats.nii.gz"
    sitk.WriteImage(image, str(image_path))
    arguments = ["features", str(image_path), "-o", str(output), "--model", f"mind+{model_dir}", "--role", "moving"]
    assert main(arguments) == 0
    written = sitk.ReadImage(str(output))
    assert written.GetNumberOfComponentsPerPixel() == 14
    assert written.GetSpacing() == (0.5, 2.0) and written.GetOrigin() == (1.0, 2.0)
    assert main(arguments) == 2  # no silent overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(arguments + ["--overwrite"]) == 0
