"""train_features: data readers, the model folder it writes, checkpoints and resuming, the train command."""

import copy
import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import itk_suits
from itk_suits.cli import main
from itk_suits.core import Scale
from itk_suits.errors import GeometryError, InputImageError, ParameterError
from itk_suits.features.cnn import FeaturePair
from itk_suits.features.model import load_torch_weights, read_model_card
from itk_suits.training import (
    FeatureTrainer,
    TrainingSettings,
    dataset_json_images,
    folder_images,
    signed_distance_maps,
    synthetic_training_pairs,
    train_features,
    training_pairs,
)
from itk_suits.training.phantoms import synthetic_pair

SCALES = [(16, 20, 0.2), (8, 20, 0.4)]
# on the CPU: bitwise-equal resumed runs need the same device and thread count (CUDA adds in varying order)
FAST = dict(all_pairs=False, scales=SCALES, checkpoint_every=4, progress=False, device="cpu")


@pytest.fixture(scope="module")
def phantoms():
    """Three 48x48 two-modality phantom pairs: fixed images, fixed labels, moving images, moving labels."""
    pairs = [synthetic_pair((48, 48), seed=seed, organs=3) for seed in range(3)]
    return tuple([getattr(p, key) for p in pairs] for key in ("fixed", "fixed_labels", "moving", "moving_labels"))


@pytest.fixture(scope="module")
def trained(phantoms, tmp_path_factory):
    """An uninterrupted run (the reference of the resume tests), on one thread like every test.

    Module fixtures start before the autouse one-thread fixture; bitwise equal results need equal thread counts.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_features(*phantoms, tmp_path_factory.mktemp("models") / "reference", **FAST)
    finally:
        torch.set_num_threads(previous)


def _weights(folder):
    return torch.load(folder / "model.pt", weights_only=True)["state_dict"]


def _log(folder):
    with open(folder / "training_log.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def test_train_features_writes_a_model_folder_that_register_uses(trained, phantoms):
    for name in ("fixed.onnx", "moving.onnx", "model.json", "model.pt", "checkpoint.pt", "training_log.csv"):
        assert (trained / name).is_file(), name
    assert (trained / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = read_model_card(trained)
    training = card.training
    rows = _log(trained)
    assert training["updates"] == len(rows) > 0 and training["mode"] == "algorithm1"
    assert {row["scale"] for row in rows} == {"0", "1"}
    assert training["command"].startswith("itk_suits.train_features(") and "all_pairs=False" in training["command"]
    assert training["device"].startswith("CPU") and np.isfinite(training["final_mean_ratio"])
    assert training["data"]["pairs"] == 3 and training["data"]["sdm_channels"] == 4
    last_scale = [float(row["ratio"]) for row in rows if row["scale"] == "1"]
    assert training["final_mean_ratio"] == pytest.approx(np.mean(last_scale), rel=1e-6)
    fixed, _, moving, _ = phantoms
    result = itk_suits.register(fixed[0], moving[0], features=str(trained), iterations=(20, 20, 20), progress=False)
    assert result.warped.shape == fixed[0].shape and np.isfinite(result.warped).all()


class _Stop(Exception):
    pass


def _stop_after(update):
    def callback(record):
        if record["update"] == update:
            raise _Stop

    return callback


@pytest.fixture
def interrupted(phantoms, tmp_path):
    """A run stopped after update 9 (its last checkpoint holds 8 updates)."""
    folder = tmp_path / "interrupted"
    with pytest.raises(_Stop):
        train_features(*phantoms, folder, callback=_stop_after(9), **FAST)
    return folder


def test_resumed_run_continues_from_its_checkpoint_and_ends_with_the_uninterrupted_weights(
        trained, interrupted, phantoms):
    checkpoint = torch.load(interrupted / "checkpoint.pt", weights_only=True)
    assert checkpoint["update"] == 8 and not checkpoint["finished"]
    assert not (interrupted / "model.json").exists()
    seen = []
    train_features(*phantoms, interrupted, callback=lambda record: seen.append(record["update"]), **FAST)
    assert seen[0] == 8  # updates 0-7 came from the checkpoint
    reference, resumed = _weights(trained), _weights(interrupted)
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[key], resumed[key]) for key in reference)
    assert [row["loss"] for row in _log(interrupted)] == [row["loss"] for row in _log(trained)]
    assert read_model_card(interrupted).training["resumed"] is True


def test_resuming_with_other_settings_is_refused_naming_the_difference(interrupted, phantoms):
    other = dict(FAST, scales=[(16, 20, 0.2), (8, 40, 0.4)])
    with pytest.raises(ParameterError, match="scales"):
        train_features(*phantoms, interrupted, **other)
    with pytest.raises(ParameterError, match="data"):
        train_features(phantoms[0][::-1], phantoms[1][::-1], *phantoms[2:], interrupted, **FAST)
    with pytest.raises(FileExistsError, match="resume=True"):
        train_features(*phantoms, interrupted, resume=False, **FAST)


def test_a_finished_model_folder_is_only_replaced_with_overwrite(trained, phantoms, tmp_path):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        train_features(*phantoms, trained, **FAST)
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in trained.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "notes.txt").write_text("mine")
    train_features(*phantoms, copy, mode="unrolled", shared=True, overwrite=True, **dict(FAST, scales=[(16, 20, 0.2)]))
    assert (copy / "shared.onnx").is_file() and not (copy / "fixed.onnx").exists()
    assert read_model_card(copy).training["mode"] == "unrolled"
    assert (copy / "notes.txt").read_text() == "mine"


def test_the_checkpoint_holds_weights_that_export_reads(interrupted):
    pair, card_fields = load_torch_weights(interrupted / "checkpoint.pt")
    assert pair.ndim == 2 and card_fields["name"] == "interrupted"


def test_mismatched_inputs_are_refused_with_clear_errors(phantoms, tmp_path):
    fixed, fixed_labels, moving, moving_labels = phantoms
    with pytest.raises(ParameterError, match="fixed_labels 2 label map"):
        training_pairs(fixed, fixed_labels[:2], moving, moving_labels)
    with pytest.raises(ParameterError, match="3 fixed and 2 moving"):
        training_pairs(fixed, fixed_labels, moving[:2], moving_labels[:2], all_pairs=False)
    with pytest.raises(ParameterError, match="list"):
        training_pairs(fixed[0], fixed_labels[0], moving, moving_labels)
    volume = np.zeros((12, 48, 48), np.float32)
    with pytest.raises(GeometryError, match="mix 2D and 3D"):
        training_pairs(fixed, fixed_labels, [volume], [volume.astype(np.uint8)])
    with pytest.raises(ParameterError, match=r"labels \[9\] occur in no label map"):
        training_pairs(fixed, fixed_labels, moving, moving_labels, labels=[1, 9])
    with pytest.raises(InputImageError, match="moving_labels\\[1\\] holds none"):
        training_pairs(fixed, fixed_labels, moving, [moving_labels[0], np.zeros((48, 48), np.uint8),
                                                     moving_labels[2]])
    with pytest.raises(GeometryError, match="fixed_labels\\[0\\]"):
        training_pairs(fixed, [np.zeros((40, 48), np.uint8)] + fixed_labels[1:], moving, moving_labels)
    with pytest.raises(ParameterError, match="slice_axis"):
        training_pairs(fixed, fixed_labels, moving, moving_labels, slice_axis="z")
    with pytest.raises(ParameterError, match="ndim=3"):
        train_features(*phantoms, tmp_path / "model", ndim=3, **FAST)
    assert not (tmp_path / "model").exists()


def test_slices_of_3d_pairs_with_a_label_mapping_have_the_fixed_numbering():
    volumes = [synthetic_pair((24, 40, 40), seed=seed, organs=3) for seed in (5, 6)]
    renumbered = [np.where(v.moving_labels > 0, v.moving_labels + 10, 0) for v in volumes]  # moving data: 11, 12, 13
    pairs = training_pairs(
        [v.fixed for v in volumes], [v.fixed_labels for v in volumes], [v.moving for v in volumes], renumbered,
        label_mapping={"11": 1, "12": 2, "13": 3}, slice_axis="z", slices=3, all_pairs=False, initial=None,
    )
    assert 2 <= len(pairs) <= 6 and all(p.fixed.shape == (1, 1, 40, 40) for p in pairs)
    assert all(p.fixed_sdm.shape == p.moving_sdm.shape == (1, 4, 40, 40) for p in pairs)
    # every slice passes through labelled anatomy of both images (a label channel is <= 0 on its voxels)
    assert all((p.fixed_sdm[0, 1:] <= 0).any() and (p.moving_sdm[0, 1:] <= 0).any() for p in pairs)
    # with the mapping, the moving SDMs are those of the original moving labels
    first = volumes[0]
    z = int(np.flatnonzero([torch.equal(p.fixed[0, 0], torch.from_numpy(first.fixed[k]))
                            for p in pairs[:1] for k in range(24)])[0])
    expected = signed_distance_maps(first.moving_labels[z], [1, 2, 3])
    np.testing.assert_allclose(pairs[0].moving_sdm[0].numpy(), expected, atol=1e-6)


def test_moving_images_are_resampled_onto_the_fixed_grid_through_the_initial_alignment():
    pair = synthetic_pair((40, 48), seed=2, organs=3)
    fixed = sitk.GetImageFromArray(pair.fixed)
    fixed_labels = sitk.GetImageFromArray(pair.fixed_labels)
    shifted = sitk.GetImageFromArray(pair.fixed)
    shifted.SetOrigin((250.0, -80.0))
    shifted_labels = sitk.GetImageFromArray(pair.fixed_labels)
    shifted_labels.SetOrigin((250.0, -80.0))
    (aligned,) = training_pairs([fixed], [fixed_labels], [shifted], [shifted_labels], initial="geometry")
    assert torch.allclose(aligned.moving, aligned.fixed, atol=1e-5)
    (resampled,) = training_pairs([fixed], [fixed_labels], [shifted], [shifted_labels], spacing=2.0, shape=(24, 32))
    assert resampled.fixed.shape == (1, 1, 24, 32) and resampled.fixed_sdm.shape == (1, 4, 24, 32)


def _write(image_array, path, spacing=(1.0, 1.0)):
    image = sitk.GetImageFromArray(image_array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))


def test_folder_images_matches_label_maps_by_file_name(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for name in ("b", "a"):
        _write(np.zeros((8, 8), np.float32), images / f"{name}.nii.gz")
        _write(np.zeros((8, 8), np.uint8), labels / f"{name}.nrrd")
    _write(np.zeros((8, 8), np.uint8), labels / "unrelated.mha")
    found, found_labels = folder_images(images, labels)
    assert [p.rsplit("/", 1)[1] for p in found] == ["a.nii.gz", "b.nii.gz"]
    assert [p.rsplit("/", 1)[1] for p in found_labels] == ["a.nrrd", "b.nrrd"]
    (labels / "b.nrrd").unlink()
    with pytest.raises(InputImageError, match="b.nii.gz"):
        folder_images(images, labels)


def test_dataset_json_images_groups_training_images_by_modality(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    entries = []
    for case in (1, 2):
        for modality in (0, 1):
            name = f"Abd_{case:04d}_{modality:04d}.nii.gz"
            _write(np.zeros((8, 8), np.float32), tmp_path / "imagesTr" / name)
            _write(np.zeros((8, 8), np.uint8), tmp_path / "labelsTr" / name)
            entry = {"image": f"./imagesTr/{name}"}
            if case == 1:
                entry["label"] = f"./labelsTr/{name}"
            entries.append(entry)
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"modality": {"0": "MR", "1": "CT"}, "registration_direction": {"fixed": 1, "moving": 0},
                                "training": entries}))
    found = dataset_json_images(path)
    assert found["modalities"] == {"fixed": "CT", "moving": "MR"}
    assert [p.rsplit("/", 1)[1] for p in found["fixed_images"]] == ["Abd_0001_0001.nii.gz", "Abd_0002_0001.nii.gz"]
    assert [p.rsplit("/", 1)[1] for p in found["moving_labels"]] == ["Abd_0001_0000.nii.gz", "Abd_0002_0000.nii.gz"]
    assert dataset_json_images(path, fixed="MR", moving="CT")["modalities"] == {"fixed": "MR", "moving": "CT"}
    with pytest.raises(ParameterError, match="no modality 'PET'"):
        dataset_json_images(path, fixed="PET")


def test_planned_updates_count_a_run_of_several_epochs_without_disturbing_it():
    pairs = synthetic_training_pairs(3, (40, 40), seed=2, organs=3)
    settings = TrainingSettings(scales=(Scale(16, 10, 0.2), Scale(8, 10, 0.4)), epochs=2)
    torch.manual_seed(0)
    planned = FeatureTrainer(FeaturePair(2), pairs, settings)
    count = planned.planned_updates()
    history = planned.train()
    torch.manual_seed(0)
    unplanned = FeatureTrainer(FeaturePair(2), pairs, settings).train()
    assert count == len(history) and [r["loss"] for r in history] == [r["loss"] for r in unplanned]
    assert {(r["epoch"], r["scale"]) for r in history} == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_a_pair_function_gives_every_epoch_new_pairs_and_a_resumed_run_the_same_ones():
    calls = []

    def pairs_of_epoch(epoch):
        calls.append(epoch)
        return synthetic_training_pairs(2, (40, 40), seed=10 + epoch, organs=3)

    settings = TrainingSettings(scales=(Scale(16, 10, 0.2),), epochs=3)
    snapshots = []

    def snapshot(record):
        if record["epoch"] == 1 and record["batch"] == 0:
            snapshots.append(copy.deepcopy((trainer.state_dict(), trainer.networks.state_dict())))

    torch.manual_seed(0)
    trainer = FeatureTrainer(FeaturePair(2), pairs_of_epoch, settings)
    history = trainer.train(snapshot)
    assert calls == [0, 1, 2]
    assert torch.equal(trainer.pairs[0].fixed, synthetic_training_pairs(2, (40, 40), seed=12, organs=3)[0].fixed)

    state, weights = snapshots[0]
    assert state["epoch"] == 1
    networks = FeaturePair(2)
    networks.load_state_dict(weights)
    calls.clear()
    resumed = FeatureTrainer(networks, pairs_of_epoch, settings)
    resumed.load_state_dict(state)
    assert calls == [0, 1]  # the interrupted epoch's pairs again
    assert [r["loss"] for r in resumed.train()] == [r["loss"] for r in history]


def test_a_pair_function_must_keep_the_number_of_pairs():
    settings = TrainingSettings(scales=(Scale(16, 10, 0.2),), epochs=2)
    trainer = FeatureTrainer(FeaturePair(2), lambda epoch: synthetic_training_pairs(2 + epoch, (40, 40), organs=3),
                             settings)
    with pytest.raises(ParameterError, match="same number every epoch"):
        trainer.train()


def test_synthetic_pairs_from_label_maps_cut_slices_of_the_given_anatomy():
    volume = np.zeros((30, 60, 50), np.int64)
    volume[5:25, 10:50, 8:40] = 7
    volume[10:20, 20:40, 15:30] = 300  # any integer values; renumbered internally
    pairs = synthetic_training_pairs(3, (32, 32), seed=4, label_maps=[volume], supervised_labels=1)
    for pair in pairs:
        assert pair.fixed.shape == (1, 1, 32, 32) and pair.fixed_sdm.shape == (1, 2, 32, 32)
        assert (pair.fixed_sdm[0, 1] < 0).any()  # a supervised structure is inside the window
    again = synthetic_training_pairs(3, (32, 32), seed=4, label_maps=[volume], supervised_labels=1)
    assert torch.equal(pairs[2].moving, again[2].moving)
    with pytest.raises(GeometryError, match="2D"):
        synthetic_training_pairs(1, (8, 8, 8), label_maps=[volume[0]])
    with pytest.raises(InputImageError, match="no label"):
        synthetic_training_pairs(1, (16, 16), label_maps=[np.zeros((20, 20), np.uint8)])


def test_synthetic_training_pairs_are_seeded_and_distinct():
    first, second = synthetic_training_pairs(2, (40, 40), seed=1, organs=3)
    again = synthetic_training_pairs(2, (40, 40), seed=1, organs=3)[0]
    assert torch.equal(first.fixed, again.fixed) and not torch.equal(first.fixed, second.fixed)
    assert first.fixed_sdm.shape == (1, 4, 40, 40)


def test_train_command_with_synthetic_pairs_writes_a_model(tmp_path, capsys):
    out = tmp_path / "synthetic_model"
    arguments = ["train", "--synthetic", "4", "--shape", "40", "40", "--iterations", "20", "--grid-spacings", "16",
                 "8", "--seed", "3", "--device", "cpu", "-o", str(out), "--quiet"]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "trained on CPU" in printed and "final mean loss ratio" in printed
    card = read_model_card(out)
    assert card.training["command"].startswith("itk-suits train --synthetic 4")
    assert card.training["settings"]["seed"] == 3 and len(card.training["settings"]["scales"]) == 2
    assert main(arguments) == 2  # a finished model is not replaced without --overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_train_command_draws_new_pairs_from_given_label_maps_every_epoch(tmp_path, capsys):
    volume = np.zeros((20, 40, 40), np.uint8)
    volume[4:16, 8:32, 6:30] = 1
    volume[8:12, 14:26, 12:20] = 2
    path = tmp_path / "aseg.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(volume), str(path))
    out = tmp_path / "from_labels"
    assert main(["train", "--synthetic", "2", "--anatomy", str(path), "--new-pairs", "--epochs", "2", "--shape", "32",
                 "32", "--iterations", "10", "--grid-spacings", "16", "--device", "cpu", "-o", str(out), "--quiet"]) == 0
    data = read_model_card(out).training["data"]
    assert data["new_pairs_every_epoch"] is True and data["anatomy"] == [str(path)]
    assert main(["train", "--anatomy", str(path), "--fixed-dir", str(tmp_path), "-o", str(tmp_path / "x")]) == 2
    assert "--anatomy only goes with --synthetic" in capsys.readouterr().err


def test_train_command_reads_image_folders(tmp_path, phantoms, capsys):
    fixed, fixed_labels, moving, moving_labels = phantoms
    for role, images, labels in (("fixed", fixed, fixed_labels), ("moving", moving, moving_labels)):
        for folder in (f"{role}_images", f"{role}_labels"):
            (tmp_path / folder).mkdir()
        for number, (image, label) in enumerate(zip(images[:2], labels[:2])):
            _write(image, tmp_path / f"{role}_images" / f"case{number}.nii.gz", spacing=(1.5, 1.5))
            _write(label, tmp_path / f"{role}_labels" / f"case{number}.nii.gz", spacing=(1.5, 1.5))
    out = tmp_path / "model"
    assert main(["train", "--fixed-dir", str(tmp_path / "fixed_images"), "--fixed-label-dir",
                 str(tmp_path / "fixed_labels"), "--moving-dir", str(tmp_path / "moving_images"),
                 "--moving-label-dir", str(tmp_path / "moving_labels"), "--iterations", "10", "--grid-spacings",
                 "16", "8", "--labels", "1", "2", "--label-mapping", "1:1", "2:2", "--device", "cpu", "-o", str(out),
                 "--quiet"]) == 0
    data = read_model_card(out).training["data"]
    assert data["pairs"] == 4 and data["sdm_channels"] == 3  # 2 x 2 pairs; background, labels 1 and 2
    regression = tmp_path / "regression"
    assert main(["train", "--fixed-dir", str(tmp_path / "fixed_images"), "--fixed-label-dir",
                 str(tmp_path / "fixed_labels"), "--moving-dir", str(tmp_path / "moving_images"),
                 "--moving-label-dir", str(tmp_path / "moving_labels"), "--iterations", "10", "--grid-spacings",
                 "16", "--mode", "sdm-regression", "--step-weight", "0.5", "--architecture", "unet",
                 "--modalities", "CT", "MR", "--device", "cpu", "-o", str(regression), "--quiet"]) == 0
    card = read_model_card(regression)
    assert card.networks == {"ct": "ct.onnx", "mr": "mr.onnx"} and card.architecture.startswith("FeatureUNet")
    assert card.training["settings"]["mode"] == "sdm-regression" and card.training["settings"]["step_weight"] == 0.5
