"""Modalities in the API: each image is described by the network of its modality, not of its role."""

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import itk_suits
from itk_suits.cli import main
from itk_suits.errors import ModalityError, ParameterError, SuitsError
from itk_suits.features import (FeaturePair, ONNXFeatureExtractor, export_onnx, get_feature_extractor, read_model_card,
                                resolved_features)
from itk_suits.features import model as model_module
from itk_suits.features.model import card_networks, checked_modalities, pretrained_model_dir

from conftest import phantom, remap_nonmonotonic

#: The constant feature value of the network of each modality in the test models.
CT, MR = 1.0, 2.0
FAST = dict(grid_spacings=(12,), iterations=3)


def _constant_pair(shared=False):
    """Networks that output a constant: CT on the fixed network, MR on the moving one."""
    pair = FeaturePair(2, shared=shared).eval()
    with torch.no_grad():
        for role, value in (("fixed", CT), ("moving", MR)):
            last = pair.network(role).layers[-1]
            last.weight.zero_()
            last.bias.fill_(value)
    return pair


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Model folders under one root: 'abdomen' (ct and mr networks), 'unnamed' (two networks by role)."""
    root = tmp_path_factory.mktemp("models")
    pair = _constant_pair()
    export_onnx(pair, root / "abdomen", modalities=("ct", "mr"), torch_weights=False)
    export_onnx(pair, root / "unnamed", torch_weights=False)
    return root


@pytest.fixture
def named_models(models, monkeypatch):
    """The test models stand in for the shipped ones (``features="abdomen"``)."""
    monkeypatch.setattr(model_module, "MODELS_DIR", models)
    return models


@pytest.fixture
def seen(monkeypatch):
    """The mean learned feature of each image described with an ONNX model, by role."""
    values = {}
    original = ONNXFeatureExtractor.__call__

    def recording(self, image, role="fixed", modality=None):
        features = original(self, image, role=role, modality=modality)
        values[role] = float(features.mean())
        return features

    monkeypatch.setattr(ONNXFeatureExtractor, "__call__", recording)
    return values


def _images():
    """An MR-like fixed and a CT-like moving 2D image (numpy), the moving one shifted."""
    anatomy = phantom((40, 44), seed=3)
    return remap_nonmonotonic(anatomy).astype(np.float32), np.roll(anatomy, 2, axis=1).astype(np.float32)


def _card(folder):
    return json.loads((folder / "model.json").read_text())


# --- the model card ------------------------------------------------------------------------------


def test_the_card_names_a_network_per_modality_and_keeps_roles_apart(models):
    card = read_model_card(models / "abdomen")
    assert card.networks == {"ct": "ct.onnx", "mr": "mr.onnx"} and card.roles is None
    assert card.modalities == ["ct", "mr"] and card.format_version == 2
    unnamed = read_model_card(models / "unnamed")
    assert unnamed.networks == {} and unnamed.roles == {"fixed": "fixed.onnx", "moving": "moving.onnx"}


def test_card_networks_of_shared_and_named_pairs():
    assert card_networks(True, None)[0] == {"any": "shared.onnx"}
    assert card_networks(True, ("ct", "mr"))[0] == {"ct": "shared.onnx", "mr": "shared.onnx"}
    networks, roles, files = card_networks(False, ("mr", "ct"))
    assert networks == {"mr": "mr.onnx", "ct": "ct.onnx"} and roles is None
    assert files == {"fixed": "mr.onnx", "moving": "ct.onnx"}


@pytest.mark.parametrize("names", [("ct", "ct"), ("any", "mr")])
def test_two_networks_need_two_distinct_names(names, tmp_path):
    with pytest.raises(ModalityError, match="two different modality names"):
        export_onnx(_constant_pair(), tmp_path / "model", modalities=names)
    assert not (tmp_path / "model").exists()


def test_the_shipped_version_1_cards_read_as_modality_agnostic_networks():
    for ndim in (2, 3):
        folder = pretrained_model_dir(ndim)
        assert _card(folder)["format_version"] == 1
        card = read_model_card(folder)
        assert card.networks == {"any": "shared.onnx"} and card.network_file("fixed", "pet") == "shared.onnx"


def _as_version_1(folder, modalities):
    """Rewrite the card of a role-keyed export as format version 1 wrote it."""
    card = _card(folder)
    card.update(format_version=1, files=card.pop("roles"), modalities=modalities)
    del card["networks"]
    (folder / "model.json").write_text(json.dumps(card))
    return folder


def test_a_version_1_card_with_two_networks_keeps_its_roles_and_gains_its_modality_names(models, tmp_path, seen):
    folder = _as_version_1(shutil.copytree(models / "unnamed", tmp_path / "old"), {"fixed": "CT", "moving": "MR"})
    card = read_model_card(folder)
    assert card.networks == {"ct": "fixed.onnx", "mr": "moving.onnx"}
    fixed, moving = _images()
    itk_suits.register(fixed, moving, features=folder, **FAST)  # unchanged: by role
    assert seen == {"fixed": CT, "moving": MR}
    itk_suits.register(fixed, moving, features=folder, modalities=("mr", "ct"), **FAST)
    assert seen == {"fixed": MR, "moving": CT}


def test_a_version_1_card_without_modality_names_refuses_them(models, tmp_path):
    folder = _as_version_1(shutil.copytree(models / "unnamed", tmp_path / "old"),
                           {"fixed": "unspecified", "moving": "unspecified"})
    assert read_model_card(folder).networks == {}
    with pytest.raises(ModalityError, match="names no modalities.*leave the modalities out"):
        itk_suits.register(*_images(), features=folder, modalities=("mr", "ct"), **FAST)


# --- registration --------------------------------------------------------------------------------


@pytest.mark.parametrize("modalities, expected", [(("mr", "ct"), {"fixed": MR, "moving": CT}),
                                                  (("CT", "MR"), {"fixed": CT, "moving": MR})])
def test_register_describes_each_image_with_the_network_of_its_modality(named_models, seen, modalities, expected):
    fixed, moving = _images()
    result = itk_suits.register(fixed, moving, features="abdomen", modalities=modalities, **FAST)
    assert seen == expected
    assert np.isfinite(result.displacement_field).all()


def test_mind_plus_a_named_model_concatenates_their_channels(named_models, seen):
    assert get_feature_extractor("mind+abdomen").channels(2) == 6 + 8
    assert get_feature_extractor("MIND+Abdomen").channels(2) == 14
    fixed, moving = _images()
    itk_suits.register(fixed, moving, features="mind+abdomen", modalities=("mr", "ct"), **FAST)
    assert seen == {"fixed": MR, "moving": CT}


def test_the_object_api_sets_the_modalities(named_models, seen):
    fixed, moving = _images()
    method = itk_suits.SuitsRegistrationMethod.New(fixed, moving, features="abdomen", **FAST)
    method.SetModalities(("ct", "mr"))
    assert method.GetModalities() == ("ct", "mr")
    method.Update()
    assert seen == {"fixed": CT, "moving": MR}
    method.SetModalities(None)
    with pytest.raises(ModalityError):
        method.Update()


def test_a_two_network_model_without_modalities_is_refused_before_any_work(named_models, seen):
    with pytest.raises(ModalityError, match=r"one network per modality \(ct, mr\).*modalities=\('ct', 'mr'\)"):
        itk_suits.register(*_images(), features="mind+abdomen", **FAST)
    assert seen == {}


def test_a_modality_the_model_has_no_network_for_is_refused_before_any_work(named_models, seen):
    with pytest.raises(ModalityError, match="'abdomen' has no network for modality 'pet' .the moving image.; "
                                           "it knows ct, mr"):
        itk_suits.register(*_images(), features="abdomen", modalities=("mr", "pet"), **FAST)
    assert seen == {}


def test_modality_agnostic_features_accept_any_modalities_and_ignore_them():
    fixed, moving = _images()
    plain = itk_suits.register(fixed, moving, features="mind", **FAST)
    named = itk_suits.register(fixed, moving, features="mind", modalities=("us", "mr"), **FAST)
    np.testing.assert_array_equal(named.displacement_field, plain.displacement_field)
    itk_suits.register(fixed, moving, features="pretrained", modalities=("us", "mr"), **FAST)


@pytest.mark.parametrize("modalities, match", [
    ("mr", "the fixed and of the moving image"),
    (("mr",), "the fixed and of the moving image"),
    (("mr", "ct", "pet"), "the fixed and of the moving image"),
    (("mr", 3), r"modalities\[1\] \(moving image\) must be a modality name"),
    (("m r", "ct"), r"modalities\[0\] \(fixed image\)"),
    ({"fixed": "mr"}, "keys 'fixed' and 'moving'"),
])
def test_malformed_modalities_are_clear_errors(modalities, match):
    with pytest.raises(ModalityError, match=match) as raised:
        itk_suits.register(*_images(), features="mind", modalities=modalities, **FAST)
    assert isinstance(raised.value, ParameterError) and isinstance(raised.value, SuitsError)


def test_checked_modalities_lowercases_and_accepts_a_dict_by_role():
    assert checked_modalities({"moving": "CT", "fixed": " MR "}) == ("mr", "ct")
    assert checked_modalities(None) is None


def test_an_in_memory_pair_chooses_by_role_and_refuses_modality_names():
    extractor = get_feature_extractor(_constant_pair())
    image = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        assert float(extractor(image, role="moving").mean()) == pytest.approx(MR)
        with pytest.raises(ModalityError, match="names no modalities"):
            extractor(image, role="moving", modality="mr")
        shared = get_feature_extractor(_constant_pair(shared=True))  # its one network was set last to MR
        assert float(shared(image, role="fixed", modality="pet").mean()) == pytest.approx(MR)


# --- feature images ------------------------------------------------------------------------------


def test_extract_features_uses_the_named_modality(named_models):
    image = phantom((20, 24), seed=1)
    assert np.allclose(itk_suits.extract_features(image, model="abdomen", modality="ct"), CT)
    assert np.allclose(itk_suits.extract_features(image, model="abdomen", modality="MR"), MR)
    both = itk_suits.extract_features(image, model="mind+abdomen", modality="mr")
    assert both.shape == (20, 24, 14) and np.allclose(both[..., 6:], MR)
    with pytest.raises(ModalityError, match="modality='ct'"):
        itk_suits.extract_features(image, model="abdomen")
    with pytest.raises(ModalityError, match="it knows ct, mr"):
        itk_suits.extract_features(image, model="abdomen", modality="us")


def test_a_shipped_model_is_found_by_its_folder_name(named_models):
    assert get_feature_extractor("Abdomen").card.name == "abdomen"
    with pytest.raises(ParameterError, match="'abdomen', 'unnamed'"):
        get_feature_extractor("thorax")


# --- the default features -------------------------------------------------------------------------


@pytest.fixture
def defaulting_models(models, tmp_path, monkeypatch):
    """The 'abdomen' model with a card that makes MIND + it the default for a fixed MR and a moving CT."""
    root = tmp_path / "models"
    shutil.copytree(models / "abdomen", root / "abdomen")
    card = _card(root / "abdomen")
    card["registration_defaults"] = {"mr,ct": "mind+abdomen"}
    (root / "abdomen" / "model.json").write_text(json.dumps(card))
    monkeypatch.setattr(model_module, "MODELS_DIR", root)
    return root


def test_auto_features_follow_the_card_for_the_named_modalities(defaulting_models):
    assert resolved_features("auto", 2, ("mr", "ct")) == "mind+abdomen"
    assert resolved_features("AUTO", 2, ("mr", "ct")) == "mind+abdomen"
    assert resolved_features("auto", 2, ("ct", "mr")) == "mind"  # a pair the card does not list
    assert resolved_features("auto", 2, None) == "mind"  # modalities not named
    assert resolved_features("auto", 3, ("mr", "ct")) == "mind"  # the model is 2D
    assert resolved_features("auto", 2, ("mr", "pet")) == "mind"  # no network for one of them
    assert resolved_features("intensity", 2, ("mr", "ct")) == "intensity"


def test_register_by_default_uses_what_the_card_chose_only_for_named_modalities(defaulting_models, seen):
    fixed, moving = _images()
    result = itk_suits.register(fixed, moving, modalities=("mr", "ct"), **FAST)
    assert seen == {"fixed": MR, "moving": CT}
    assert result.parameters.features == "mind+abdomen"
    seen.clear()
    result = itk_suits.register(fixed, moving, **FAST)
    assert seen == {} and result.parameters.features == "mind"


def test_auto_is_only_a_registration_default():
    with pytest.raises(ParameterError, match="resolved by register"):
        get_feature_extractor("auto")


@pytest.mark.parametrize("defaults", [["mind"], {"mr": "mind"}, {"mr,ct": ""}, {"mr,ct": 3}])
def test_a_card_with_malformed_registration_defaults_is_refused(models, tmp_path, defaults):
    shutil.copytree(models / "abdomen", tmp_path / "bad")
    card = _card(tmp_path / "bad")
    card["registration_defaults"] = defaults
    (tmp_path / "bad" / "model.json").write_text(json.dumps(card))
    with pytest.raises(ParameterError, match="registration_defaults"):
        read_model_card(tmp_path / "bad")


def test_pretrained_prefers_a_modality_agnostic_model(models, tmp_path):
    shutil.copytree(models / "abdomen", tmp_path / "a-named")
    assert pretrained_model_dir(2, tmp_path) == tmp_path / "a-named"  # the only one: taken
    export_onnx(_constant_pair(shared=True), tmp_path / "b-shared", torch_weights=False)
    assert pretrained_model_dir(2, tmp_path) == tmp_path / "b-shared"


# --- command line --------------------------------------------------------------------------------


@pytest.fixture
def image_files(tmp_path):
    fixed, moving = _images()
    paths = tmp_path / "fixed.nii.gz", tmp_path / "moving.nii.gz"
    for array, path in zip((fixed, moving), paths):
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return paths


CLI_FAST = ["--grid-spacings", "12", "--iterations", "3", "--quiet"]


def test_cli_register_takes_the_modalities(named_models, seen, image_files, tmp_path, capsys):
    fixed, moving = map(str, image_files)
    assert main(["register", fixed, moving, "-o", str(tmp_path / "out"), "--features", "abdomen",
                 "--modalities", "mr", "ct", *CLI_FAST]) == 0
    assert seen == {"fixed": MR, "moving": CT}
    assert main(["register", fixed, moving, "-o", str(tmp_path / "other"), "--features", "abdomen", *CLI_FAST]) == 2
    assert "--modalities" in capsys.readouterr().err
    assert not (tmp_path / "other").exists() or not list((tmp_path / "other").iterdir())


def test_cli_register_batch_takes_the_modalities(named_models, seen, image_files, tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"fixed,moving\n{image_files[0].name},{image_files[1].name}\n")
    out = str(tmp_path / "cohort")
    assert main(["register-batch", str(pairs), "-o", out, "--features", "abdomen", *CLI_FAST]) == 2
    assert "one network per modality" in capsys.readouterr().err
    assert main(["register-batch", str(pairs), "-o", out, "--features", "abdomen",
                 "--modalities", "ct", "mr", *CLI_FAST]) == 0
    assert seen == {"fixed": CT, "moving": MR}


def test_a_cohort_csv_names_the_modalities_of_each_pair(named_models, image_files, tmp_path, monkeypatch):
    described = []
    original = ONNXFeatureExtractor.__call__

    def recording(self, image, role="fixed", modality=None):
        features = original(self, image, role=role, modality=modality)
        described.append((role, float(features.mean())))
        return features

    monkeypatch.setattr(ONNXFeatureExtractor, "__call__", recording)
    fixed, moving = (path.name for path in image_files)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"fixed,moving,fixed_modality,moving_modality,name\n{fixed},{moving},MR,ct,a\n"
                     f"{moving},{fixed},ct,mr,b\n")
    rows = itk_suits.register_many(pairs, tmp_path / "out", features="abdomen", progress=False, **FAST)
    assert [row["status"] for row in rows] == ["ok", "ok"]
    assert described == [("fixed", MR), ("moving", CT), ("fixed", CT), ("moving", MR)]
    for text, match in ((f"fixed,moving,fixed_modality\n{fixed},{moving},mr\n", "both fixed_modality and"),
                        (f"fixed,moving,fixed_modality,moving_modality\n{fixed},{moving},mr,us\n",
                         "no network for modality 'us'")):
        pairs.write_text(text)
        with pytest.raises(ModalityError, match=match):
            itk_suits.register_many(pairs, tmp_path / "refused", features="abdomen", progress=False, **FAST)
        assert not (tmp_path / "refused").exists()


def test_cli_features_takes_the_modality(named_models, image_files, tmp_path):
    output = tmp_path / "feats.nii.gz"
    assert main(["features", str(image_files[0]), "-o", str(output), "--model", "abdomen", "--modality", "mr"]) == 0
    assert np.allclose(sitk.GetArrayFromImage(sitk.ReadImage(str(output))), MR)


def test_cli_export_names_the_modalities(tmp_path, capsys):
    pair = _constant_pair()
    weights = export_onnx(pair, tmp_path / "unnamed") / "model.pt"
    assert main(["export", str(weights), "-o", str(tmp_path / "named"), "--modalities", "CT", "MR"]) == 0
    assert "networks for ct, mr" in capsys.readouterr().out
    assert read_model_card(tmp_path / "named").networks == {"ct": "ct.onnx", "mr": "mr.onnx"}


# --- the shipped models with one network per modality ------------------------------------------------

SHIPPED_PER_MODALITY = [folder for folder in model_module.shipped_model_dirs()
                        if model_module.ANY_MODALITY not in read_model_card(folder).networks]


@pytest.mark.parametrize("folder", SHIPPED_PER_MODALITY, ids=lambda folder: folder.name)
def test_a_shipped_model_per_modality_matches_its_card_and_its_defaults_resolve(folder):
    card = read_model_card(folder)
    model_module.verify_model_files(folder, card)  # the ONNX checksums
    assert card.training["command"].startswith("python benchmarks/") and card.training["final_mean_ratio"] > 0
    assert card.benchmark, "the card records what was measured"
    shape = (40, 44) if card.ndim == 2 else (24, 28, 26)
    image = sitk.GetImageFromArray(phantom(shape).astype(np.float32))
    image.SetSpacing((1.5, 1.7, 2.5)[:card.ndim])
    for modality in card.modalities:
        features = itk_suits.extract_features(image, model=folder.name, modality=modality)
        assert features.GetNumberOfComponentsPerPixel() == card.channels
        assert np.isfinite(sitk.GetArrayViewFromImage(features)).all()
    for key, features in card.registration_defaults.items():
        modalities = tuple(key.split(","))
        assert resolved_features("auto", card.ndim, modalities) == features
        extractor = get_feature_extractor(features)
        for role, modality in zip(("fixed", "moving"), modalities):
            extractor.check_modality(role, modality, card.ndim)
    with pytest.raises(ModalityError):
        itk_suits.register(image, image, features=folder.name, grid_spacings=(8,), iterations=2)
    first = card.modalities[0]
    result = itk_suits.register(image, image, features=folder.name, modalities=(first, first),
                                grid_spacings=(8,), iterations=20)
    field = sitk.GetArrayFromImage(result.displacement_field)
    assert np.abs(field).max() < 0.1 * min(image.GetSpacing())  # identity stays identity (mm)
