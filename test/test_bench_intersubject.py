"""benchmarks/bench_intersubject.py on a data folder of tiny phantoms written here (no shared data)."""

import importlib
import json
import pathlib
import sys

import numpy as np
import pytest
import SimpleITK as sitk

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = REPOSITORY / "benchmarks"

#: CHAOS-labelled organs (liver, right kidney, left kidney, spleen) as spheres in LPS: centre (mm), radius.
ORGANS = {1: ((-45, -5, 0), 28), 2: ((-40, 40, -10), 13), 3: ((40, 40, -10), 13), 4: ((50, 15, 5), 16)}


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("bench_intersubject")
    finally:
        sys.path.remove(str(BENCHMARKS))


def spheres(size, spacing, origin, direction, organs, shift=(0.0, 0.0, 0.0)) -> sitk.Image:
    """uint8 label map of ``organs`` (label -> (centre, radius)), every centre moved by ``shift`` (mm)."""
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing(spacing)
    grid.SetOrigin(origin)
    grid.SetDirection(direction)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), axis=-1).reshape(-1, 3)
    points = np.asarray(origin) + (np.reshape(direction, (3, 3)) @ (index * np.asarray(spacing)).T).T
    array = np.zeros(size[::-1], np.uint8)
    for label, (centre, radius) in organs.items():
        inside = np.linalg.norm(points - np.add(centre, shift), axis=1) <= radius
        array[tuple(index[inside][:, ::-1].T)] = label
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(grid)
    return image


def mr_like(labels: sitk.Image, seed: int) -> sitk.Image:
    """A T2-like image: an elliptic body, organ intensities, noise."""
    rng = np.random.default_rng(seed)
    array = sitk.GetArrayFromImage(labels)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in array.shape], indexing="ij")
    image = np.where(x**2 / 0.8 + y**2 / 0.6 <= 1, 300.0, 0.0)
    for label, value in {1: 500.0, 2: 800.0, 3: 800.0, 4: 650.0}.items():
        image[array == label] = value
    image += 20 * rng.standard_normal(image.shape)
    out = sitk.GetImageFromArray(image.astype(np.float32))
    out.CopyInformation(labels)
    return out


def write(image, path: pathlib.Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """CHAOS subjects 1-3 (organs moved apart from subject to subject), WORD 0014 and 0016, prostate obs000."""
    folder = tmp_path_factory.mktemp("data")
    chaos_grid = dict(size=(256, 256, 12), spacing=(1.25, 1.25, 7.7), origin=(-160.0, 160.0, -45.0),
                      direction=(1, 0, 0, 0, -1, 0, 0, 0, 1))
    for subject, shift in ((1, 0.0), (2, 8.0), (3, -6.0)):
        organs = {label: (np.add(centre, (shift * (label - 2), shift / 2, 0)), radius * (1 + shift / 80))
                  for label, (centre, radius) in ORGANS.items()}
        labels = spheres(organs=organs, **chaos_grid)
        write(labels, folder / "chaos_mr_t2" / f"label_{subject}.nii.gz")
        write(mr_like(labels, subject), folder / "chaos_mr_t2" / f"image_{subject}.nii.gz")
    word = {1: ORGANS[1], 4: ORGANS[2], 3: ORGANS[3], 2: ORGANS[4], 8: ((0, 10, 0), 10)}  # WORD numbering
    for name, shift in (("0014", (5.0, -4.0, 3.0)), ("0016", (-4.0, 3.0, 0.0))):
        write(spheres((90, 80, 30), (2.5, 2.5, 3.0), (-110.0, -90.0, -45.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), word,
                      shift), folder / "word_ct_labels" / f"word_{name}.nii.gz")
    prostate = folder / "prostate_mr_us"
    for kind, size, shift in (("moving", (40, 40, 30), 0.0), ("fixed", (34, 36, 28), 3.0)):
        gland = {1: ((0, 0, 0), 14)}
        landmarks = [{1: ((4 + shift, 3, 0), 3)}, {1: ((-5, -4 + shift, 2), 3)}]
        geometry = dict(size=size, spacing=(1.5, 1.5, 1.5), origin=tuple(-0.75 * n for n in size),
                        direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
        channels = [spheres(organs=o, **geometry) for o in [gland, *landmarks]]
        stacked = np.stack([sitk.GetArrayFromImage(c) for c in channels])
        write(sitk.GetImageFromArray(stacked.astype(np.uint8), isVector=False), prostate / f"{kind}_labels" / "obs000.nii.gz")
        rng = np.random.default_rng(len(size))
        image = 60.0 + 120.0 * stacked[0] + (80.0 if kind == "moving" else -30.0) * stacked[1:].sum(axis=0)
        picture = sitk.GetImageFromArray((image + 10 * rng.standard_normal(image.shape)).astype(np.float32))
        picture.CopyInformation(channels[0])
        write(picture, prostate / f"{kind}_images" / "obs000.nii.gz")
    return folder


def test_quick_run_on_phantoms(bench, data, tmp_path, capsys):
    """Every 2D case and the 3D prostate: rows per method, Dice in [0, 1], pictures, a SUITS gain on CHAOS."""
    output = tmp_path / "intersubject.json"
    code = bench.main(["--split", "dev", "--quick", "--data", str(data), "--output", str(output),
                       "--cases", "chaos-2d", "ct-mr-2d", "prostate-2d", "prostate-3d",
                       "--methods", "none", "suits", "ants", "--variant", "short:iterations=(40, 20, 10),seed=1"])
    assert code == 0
    printed = capsys.readouterr().out
    report = json.loads(output.read_text())
    assert report["complete"] and report["split"] == "dev" and report["threads"] == 1
    assert report["methods"] == ["none", "suits", "short"]
    assert any("NOT RUN  ants" in note for note in report["notes"])
    for case in ("chaos-2d", "ct-mr-2d", "prostate-2d", "prostate-3d"):
        entry = report["cases"][case]
        (pair,) = entry["pairs"]
        assert set(pair["methods"]) == {"none", "suits", "short"}, case
        key = "dice" if case.startswith("prostate") else "dice_mean"
        for name, row in pair["methods"].items():
            assert key in row and 0.0 <= row[key] <= 1.0, (case, name, row)
            assert (row["folding_percent"] is None) == (name == "none")
            assert row["median_seconds"] >= 0 and "ratio_to_elastix" not in row  # no elastix in this run
        assert pathlib.Path(entry["picture"]).is_file()
        assert case in printed
    ct = report["cases"]["ct-mr-2d"]["pairs"][0]
    assert ct["ct_phase"] in ("non-contrast", "arterial", "portal-venous")
    assert set(ct["initial_dice_mean"]) == {"moments", "geometry"}
    chaos = report["cases"]["chaos-2d"]["pairs"][0]["methods"]
    assert chaos["suits"]["dice_mean"] > chaos["none"]["dice_mean"]
    assert "reproduce: python" in printed


def test_missing_data_is_reported_not_measured(bench, tmp_path, capsys):
    output = tmp_path / "empty.json"
    assert bench.main(["--split", "benchmark", "--quick", "--data", str(tmp_path / "none"), "--output", str(output),
                       "--cases", "chaos-2d", "--methods", "none"]) == 0
    report = json.loads(output.read_text())
    assert "no data" in report["cases"]["chaos-2d"]["skipped"] and "label_31" not in report["cases"]["chaos-2d"]["skipped"]
    assert "NOT MEASURED  chaos-2d" in capsys.readouterr().out


def test_variants_and_their_errors(bench):
    name, options = bench.parse_variant("coarse:grid_spacings=(8, 5),features=mind,samples=None")
    assert name == "coarse" and options == {"grid_spacings": (8, 5), "features": "mind", "samples": None}
    with pytest.raises(bench.BenchmarkError, match="no option 'similarity'"):
        bench.parse_variant("mi:similarity=mi")
    with pytest.raises(bench.BenchmarkError, match="threads"):
        bench.parse_variant("x:threads=4")
    with pytest.raises(bench.BenchmarkError, match="NAME:KEY=VALUE"):
        bench.parse_variant("suits:iterations=5")
    with pytest.raises(SystemExit):
        bench.parse_arguments(["--split", "dev", "--suits-option", "similarity=mi"])
    with pytest.raises(bench.MethodUnavailable):
        bench._peer("run_no_such_method", "find_ants")({"threads": 1, "quick": True})
    with pytest.raises(bench.MethodUnavailable, match="ITK_SUITS_ANTS_PYTHON"):
        bench._peer("run_ants", "find_ants")({"threads": 1, "quick": True})


def test_development_and_held_out_parts_do_not_overlap(bench):
    dev = {s for pair in bench.CHAOS_PAIRS["dev"] for s in pair}
    held_out = {s for pair in bench.CHAOS_PAIRS["benchmark"] for s in pair}
    assert dev <= set(range(1, 23)) and held_out <= set(range(31, 40)) and len(bench.CHAOS_PAIRS["dev"]) <= 6
    ct_dev = {name for _, name in bench.CT_PAIRS["dev"]}
    ct_held_out = {name for _, name in bench.CT_PAIRS["benchmark"]}
    assert not ct_dev & ct_held_out and {f for f, _ in bench.CT_PAIRS["dev"]} <= dev
    assert {f for f, _ in bench.CT_PAIRS["benchmark"]} <= held_out
    assert all(int(n[3:]) < 54 for n in bench.PROSTATE_PAIRS["dev"])
    assert all(int(n[3:]) >= 54 for n in bench.PROSTATE_PAIRS["benchmark"])


def test_the_validation_part_is_development_data_never_trained_on(bench):
    import train_abdomen

    validation = {s for pair in bench.CHAOS_PAIRS["validation"] for s in pair}
    assert validation <= set(bench.CHAOS_SUBJECTS["dev"]) and not validation & set(train_abdomen.MR_SUBJECTS)
    ct = {name for _, name in bench.CT_PAIRS["validation"]}
    assert {f"word_{s}" for s in bench.WORD_SUBJECTS["dev"]} >= ct and not ct & set(train_abdomen.CT_SUBJECTS)
    assert not set(train_abdomen.MR_SUBJECTS) & {s for pair in bench.CHAOS_PAIRS["benchmark"] for s in pair}


def test_the_t1_like_contrast_keeps_air_dark_and_swaps_bright_and_dark_tissue(bench):
    array = np.zeros((1, 10, 30), np.float32)
    array[0, :, 10:20], array[0, :, 20:] = 300.0, 900.0  # air, a darker and a brighter tissue
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 1.5, 7.0))
    result = bench.mr_contrast(image, "t1-like")
    out = sitk.GetArrayViewFromImage(result)[0, 0]
    assert out[0] < out[25] < out[15]
    assert result.GetSpacing() == image.GetSpacing()
    assert bench.mr_contrast(image, "t2-spir") is image


@pytest.fixture
def trainer_script(bench, monkeypatch):
    """benchmarks/train_abdomen.py reading the phantom folder's subjects."""
    import train_abdomen

    monkeypatch.setattr(train_abdomen, "MR_SUBJECTS", (1, 2))
    monkeypatch.setattr(train_abdomen, "CT_SUBJECTS", ("word_0014", "word_0016"))
    monkeypatch.setattr(train_abdomen, "RENDERINGS", 1)
    return train_abdomen


@pytest.mark.parametrize("ndim, size", [(2, (40, 44)), (3, (12, 20, 22))])
def test_abdomen_training_samples_are_windows_through_the_organs_with_their_sdms(data, trainer_script, ndim, size):
    anatomy = trainer_script.Anatomy(data, ndim)
    rng = np.random.default_rng(0)
    for modality in ("mr", "ct", "mr", "ct"):
        image, sdm = anatomy.sample(modality, size, rng)
        assert image.shape == (1, 1, *size) and sdm.shape == (1, 5, *size)
        assert np.isfinite(image.numpy()).all() and float(image.std()) > 0
        assert float(sdm[0, 1:].min()) < 0  # the window shows an organ: some SDM is negative (inside)
        assert float(sdm.abs().max()) <= 1


def test_abdomen_training_writes_a_model_per_modality(data, trainer_script, tmp_path):
    out = tmp_path / "abdomen"
    trainer_script.main(["--ndim", "2", "--data", str(data), "--out", str(out), "--epochs", "1", "--pairs", "2",
                         "--size", "32", "36", "--batch", "2", "--presentations", "1"])
    card = json.loads((out / "model.json").read_text())
    assert card["networks"] == {"mr": "mr.onnx", "ct": "ct.onnx"}
    assert card["training"]["mode"] == "sdm-regression" and card["training"]["network"]["architecture"] == "featurecnn"
    assert card["training"]["data"]["licences"] and card["training"]["command"].startswith("python benchmarks/")
    assert not (out / "checkpoint.pt").exists()


def test_sdm_fit_reports_a_loss_ratio_per_modality_and_subject_set(data, trainer_script, tmp_path, monkeypatch, capsys):
    import sdm_fit_abdomen

    model = tmp_path / "abdomen"
    trainer_script.main(["--ndim", "2", "--data", str(data), "--out", str(model), "--epochs", "1", "--pairs", "2",
                         "--size", "32", "36", "--batch", "2", "--presentations", "1"])
    monkeypatch.setattr(sdm_fit_abdomen, "SIZES", {2: (32, 36)})
    monkeypatch.setattr(sdm_fit_abdomen, "SETS", {
        "MR": ("mr", {"mr_subjects": (3,), "mr_intensities": None}),
        "MR, T1-like": ("mr", {"mr_subjects": (3,), "mr_intensities": sdm_fit_abdomen.t1_like}),
        "CT": ("ct", {"ct_maps": ("word_0016",)})})
    output = tmp_path / "fit.json"
    sdm_fit_abdomen.main([str(model), "--data", str(data), "--samples", "2", "--output", str(output)])
    ratios = json.loads(output.read_text())["ratios"][str(model)]
    assert set(ratios) == {"MR", "MR, T1-like", "CT"}
    assert all(np.isfinite(value) and value > 0 for value in ratios.values())
    assert "| MR | MR, T1-like | CT |" in capsys.readouterr().out


def test_the_t1_like_window_curve_swaps_tissues_and_keeps_air_dark(trainer_script):
    import sdm_fit_abdomen

    window = np.array([[0.0, 300.0, 900.0]] * 4, np.float32)  # air, a darker and a brighter tissue
    out = sdm_fit_abdomen.t1_like(window, np.random.default_rng(0))
    assert out[0, 0] < out[0, 2] < out[0, 1]
