"""The comparison driver, its reports and the compare/evaluate commands, on tiny 2D phantoms."""

import json
import statistics

import numpy as np
import pytest
import SimpleITK as sitk
from matplotlib.image import imread

from conftest import phantom, remap_nonmonotonic
from itk_suits.cli import main
from itk_suits.errors import ParameterError
from itk_suits.evaluation import elastix, metrics
from itk_suits.evaluation.compare import compare, evaluate
from itk_suits.interop.datasets import RegistrationPair
from itk_suits.evaluation.simpleelastix import ENVIRONMENT_VARIABLE
from itk_suits.visualization import save_comparison_figure

FAST_SUITS = {"iterations": 20, "grid_spacings": (12, 8)}
SPACING = (1.0, 1.2)


def quick_elastix_maps():
    """Elastix's affine and B-spline maps with one resolution and 30 iterations each."""
    stages = [
        elastix.default_parameter_map(name, resolutions=1, overrides={"MaximumNumberOfIterations": ["30"]})
        for name in ("affine", "bspline")
    ]
    return {"elastix": stages}


def make_pair(seed=1, shift=(2, -3), name="pair"):
    """A multi-modal pair: a phantom, and its non-monotonic remapping shifted by ``shift`` voxels.

    Two labels (bright and medium structures); the moving labels move with the moving image.
    """
    image = phantom((64, 64), seed=seed)
    labels = np.zeros(image.shape, np.uint8)
    labels[image > 0.5] = 1
    labels[(image > 0.2) & (image <= 0.5)] = 2

    def as_image(array):
        result = sitk.GetImageFromArray(array)
        result.SetSpacing(SPACING)
        return result

    moving = np.roll(remap_nonmonotonic(image), shift, axis=(0, 1)).astype(np.float32)
    return RegistrationPair(
        name=name,
        fixed=as_image(image),
        moving=as_image(moving),
        fixed_labels=as_image(labels),
        moving_labels=as_image(np.roll(labels, shift, axis=(0, 1))),
        label_names={1: "bright", 2: "medium"},
    )


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """One comparison run (SUITS-MIND, quick elastix, unconfigured SimpleElastix), outputs saved."""
    output = tmp_path_factory.mktemp("compare") / "report"
    pair = make_pair()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(ENVIRONMENT_VARIABLE, raising=False)
        results = compare(
            pair.fixed, pair.moving, fixed_labels=pair.fixed_labels, moving_labels=pair.moving_labels,
            methods="suits-mind,elastix,simpleelastix", label_names=pair.label_names, output_dir=output,
            repeats=2, threads=1, suits_options=FAST_SUITS, elastix_maps=quick_elastix_maps(),
            save_outputs=True, progress=False,
        )
    return results, output, pair


def test_compare_writes_json_markdown_html_and_a_readable_figure(comparison):
    results, output, _ = comparison
    for name in ("results.json", "report.md", "report.html"):
        assert (output / name).is_file(), name
    figure = results["pairs"][0]["files"]["figure"]
    pixels = imread(output / figure)
    assert pixels.ndim == 3 and pixels[..., :3].std() > 0.05  # a drawn figure, not a blank canvas
    html = (output / "report.html").read_text()
    assert f'<img src="{figure}"' in html  # embedded by a path relative to the report
    assert html.count("<table>") >= 3  # methods, Dice per label, HD95 per label
    markdown = (output / "report.md").read_text()
    assert f"]({figure})" in markdown
    assert "| medium |" in markdown.replace("| 2 | medium |", "| medium |")
    assert json.loads((output / "results.json").read_text()) == results


def test_compare_registers_both_methods_better_than_the_initial_alignment(comparison):
    results, _, _ = comparison
    record = results["pairs"][0]
    for method in ("suits-mind", "elastix"):
        assert record["methods"][method]["status"] == "ok"
        assert record["methods"][method]["mean_dice"] > record["initial"]["mean_dice"] + 0.1, method
        assert record["methods"][method]["folding_percent"] == 0.0, method


def test_json_numbers_match_the_metrics_recomputed_from_the_saved_transforms(comparison):
    results, output, pair = comparison
    record = json.loads((output / "results.json").read_text())["pairs"][0]
    initial_rows = metrics.label_table(pair.fixed_labels, pair.moving_labels, names=pair.label_names)
    assert record["initial"]["labels"] == initial_rows  # JSON keeps float64 values exactly
    for method in ("suits-mind", "elastix"):
        entry = record["methods"][method]
        transform = sitk.ReadTransform(str(output / record["files"][method]["transform"]))
        warped = sitk.Resample(pair.moving_labels, pair.fixed, transform, sitk.sitkNearestNeighbor)
        saved = sitk.ReadImage(str(output / record["files"][method]["warped_labels"]))
        assert np.array_equal(sitk.GetArrayFromImage(warped), sitk.GetArrayFromImage(saved)), method
        dice = metrics.dice(pair.fixed_labels, warped)
        distance = metrics.hausdorff95(pair.fixed_labels, warped)
        assert {row["label"]: row["dice"] for row in entry["labels"]} == pytest.approx(dice)
        assert {row["label"]: row["hd95_mm"] for row in entry["labels"]} == pytest.approx(distance)
        assert entry["mean_dice"] == pytest.approx(np.mean(list(dice.values())))
        assert [row["name"] for row in entry["labels"]] == ["bright", "medium"]
        field = elastix.displacement_field_on(transform, pair.fixed)
        assert entry["folding_percent"] == pytest.approx(metrics.folding_percentage(field), abs=1e-9)
        assert entry["sdlogj"] == pytest.approx(metrics.log_jacobian_std(field), rel=1e-6)
        assert len(entry["seconds_runs"]) == 2 and entry["threads"] == 1
        assert entry["seconds"] == pytest.approx(statistics.median(entry["seconds_runs"]))
    elastix_seconds = record["methods"]["elastix"]["seconds"]
    suits = record["methods"]["suits-mind"]
    assert suits["time_ratio"] == pytest.approx(suits["seconds"] / elastix_seconds)
    assert results["settings"]["time_reference"] == "elastix"


def test_results_record_the_command_and_the_package_versions(comparison):
    results, _, _ = comparison
    environment = results["environment"]
    assert environment["command"] and isinstance(environment["argv"], list)
    for package in ("python", "itk-suits", "torch", "itk", "itk-elastix", "SimpleITK", "numpy", "onnxruntime"):
        assert package in environment["versions"], package
    assert environment["versions"]["SimpleITK"] == sitk.Version_VersionString()


def test_missing_simpleelastix_is_reported_as_skipped_with_its_reason(comparison):
    results, output, _ = comparison
    entry = results["pairs"][0]["methods"]["simpleelastix"]
    assert entry["status"] == "skipped"
    assert ENVIRONMENT_VARIABLE in entry["reason"]
    assert "simpleelastix skipped: SimpleElastix is not available" in (output / "report.md").read_text()
    assert results["summary"]["methods"]["simpleelastix"]["skipped"] == 1


def test_unknown_method_is_a_parameter_error_before_anything_is_written(tmp_path):
    pair = make_pair()
    with pytest.raises(ParameterError, match="'demons'"):
        compare(pair.fixed, pair.moving, methods=("suits-mind", "demons"), output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unavailable_suits_features_are_skipped_not_crashed_on():
    pair = make_pair()
    results = compare(pair.fixed, pair.moving, methods=["suits-no-such-features"], progress=False)
    entry = results["pairs"][0]["methods"]["suits-no-such-features"]
    assert entry["status"] == "skipped" and "no-such-features" in entry["reason"]


def test_existing_report_files_are_not_overwritten(comparison):
    _, output, pair = comparison
    before = (output / "results.json").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        compare(pair.fixed, pair.moving, output_dir=output, progress=False)
    assert (output / "results.json").read_bytes() == before


def test_every_method_gets_the_same_mask_and_initial_alignment(monkeypatch):
    """The initial transform is resolved once and the same objects reach SUITS and elastix."""
    import itk_suits.registration

    pair = make_pair(shift=(6, -8))
    mask = sitk.Cast(pair.fixed > 0.05, sitk.sitkUInt8)
    received = {}
    identity = sitk.Transform(2, sitk.sitkIdentity)

    class FakeSuitsResult:
        sitk_transform, seconds, device, log = identity, 0.5, "cpu", []

    def fake_register(fixed, moving, **options):
        received["suits"] = options
        return FakeSuitsResult()

    def fake_elastix(fixed, moving, **options):
        received["elastix"] = options
        field = elastix.displacement_field_on(identity, fixed)
        return elastix.ElastixResult(fixed, field, identity, 2.0)

    monkeypatch.setattr(itk_suits.registration, "register", fake_register)
    monkeypatch.setattr(elastix, "run_elastix", fake_elastix)
    results = compare(pair.fixed, pair.moving, fixed_labels=pair.fixed_labels, moving_labels=pair.moving_labels,
                      fixed_mask=mask, methods="suits-mind,elastix", initial_transform="moments", progress=False)
    suits, baseline = received["suits"], received["elastix"]
    assert suits["initial_transform"] is baseline["initial_transform"]
    assert isinstance(suits["initial_transform"], sitk.Euler2DTransform)
    assert suits["fixed_mask"] is baseline["fixed_mask"]
    assert np.array_equal(sitk.GetArrayFromImage(suits["fixed_mask"]), sitk.GetArrayFromImage(mask) != 0)
    record = results["pairs"][0]
    # the initial row is scored after the moments alignment, which undoes most of the shift
    unaligned = np.mean(list(metrics.dice(pair.fixed_labels, pair.moving_labels).values()))
    assert record["initial"]["mean_dice"] > unaligned + 0.2
    assert record["initial_transform"]["type"] == "Euler2DTransform"
    assert record["methods"]["suits-mind"]["time_ratio"] == pytest.approx(0.25)
    assert record["regularity_region"] == "fixed mask"


def test_evaluate_over_two_pairs_averages_the_per_pair_scores():
    pairs = [make_pair(seed=1, name="first"), make_pair(seed=2, shift=(-2, 2), name="second")]
    results = evaluate(pairs, ("suits-mind", "elastix"), suits_options=FAST_SUITS,
                       elastix_maps=quick_elastix_maps(), threads=1, progress=False)
    assert [record["name"] for record in results["pairs"]] == ["first", "second"]
    summary = results["summary"]
    assert summary["pairs"] == 2
    for method in ("suits-mind", "elastix"):
        runs = [record["methods"][method] for record in results["pairs"]]
        means = summary["methods"][method]
        assert means["pairs"] == 2
        for key in ("mean_dice", "mean_hd95_mm", "folding_percent", "sdlogj", "seconds", "time_ratio"):
            assert means[key] == pytest.approx(np.mean([run[key] for run in runs])), (method, key)
        for label_mean in means["labels"]:
            per_pair = [row["dice"] for run in runs for row in run["labels"]
                        if row["label"] == label_mean["label"]]
            assert label_mean["pairs"] == 2
            assert label_mean["dice"] == pytest.approx(np.mean(per_pair))
    initial = [record["initial"]["mean_dice"] for record in results["pairs"]]
    assert summary["initial"]["mean_dice"] == pytest.approx(np.mean(initial))


def test_cli_compare_writes_the_report_and_prints_the_table(tmp_path, capsys):
    pair = make_pair()
    paths = {}
    for role in ("fixed", "moving", "fixed_labels", "moving_labels"):
        paths[role] = str(tmp_path / f"{role}.nii.gz")
        sitk.WriteImage(getattr(pair, role), paths[role])
    output = tmp_path / "report"
    code = main(["compare", paths["fixed"], paths["moving"], "--fixed-labels", paths["fixed_labels"],
                 "--moving-labels", paths["moving_labels"], "--methods", "suits-mind", "--iterations", "20",
                 "--threads", "1", "--metric", "features", "--modalities", "mr", "ct", "-o", str(output), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    assert (output / "report.html").is_file() and (output / "figures" / "pair.png").is_file()
    assert str(output / "report.html") in printed
    assert any(line.startswith("suits-mind") and " ok " in line for line in printed.splitlines())
    recorded = json.loads((output / "results.json").read_text())
    assert recorded["pairs"][0]["fixed"] == paths["fixed"]
    assert f"fixed {paths['fixed']}" in (output / "report.md").read_text()
    assert recorded["settings"]["suits_options"] == {"iterations": [20], "metric": "features",
                                                     "modalities": ["mr", "ct"]}


def test_cli_reports_an_unknown_method_on_one_line(tmp_path, capsys):
    pair = make_pair()
    fixed, moving = str(tmp_path / "f.nii.gz"), str(tmp_path / "m.nii.gz")
    sitk.WriteImage(pair.fixed, fixed)
    sitk.WriteImage(pair.moving, moving)
    assert main(["compare", fixed, moving, "--methods", "suits-mind,demons", "-o", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "unknown method 'demons'" in error and len(error.strip().splitlines()) == 1


def test_comparison_figure_widens_with_columns_and_shows_the_middle_slice(tmp_path):
    image = phantom((32, 32), seed=3)
    labels = (image > 0.4).astype(np.uint8)
    shift = np.zeros((2, 32, 32))
    shift[0] = 1.5
    column = {"warped": image, "labels": labels, "displacement": shift}
    one = imread(save_comparison_figure(tmp_path / "one.png", image, {"a": column}, fixed_labels=labels))
    two = imread(save_comparison_figure(tmp_path / "two.png", image, {"a": column, "b": column},
                                        fixed_labels=labels))
    assert two.shape[1] > 1.5 * one.shape[1] and two.shape[0] == one.shape[0]

    other = np.random.default_rng(0).random(image.shape)
    volume = np.stack([other, image, other])
    shift_3d = np.zeros((3, 3, 32, 32))
    shift_3d[:2] = shift[:, None]  # the same in-plane shift on every slice, no z component
    column_3d = {"warped": volume, "labels": np.stack([labels] * 3), "displacement": shift_3d}
    middle = imread(save_comparison_figure(tmp_path / "three.png", volume, {"a": column_3d},
                                           fixed_labels=np.stack([labels] * 3)))
    assert np.array_equal(middle, one)


def test_cli_evaluate_over_folders_reports_the_means_of_every_pair(tmp_path, capsys):
    folders = {role: tmp_path / role for role in ("fixed", "moving", "fixed_labels", "moving_labels")}
    for folder in folders.values():
        folder.mkdir()
    for index, pair in enumerate([make_pair(seed=1), make_pair(seed=2, shift=(-2, 2))]):
        for role, folder in folders.items():
            sitk.WriteImage(getattr(pair, role), str(folder / f"case{index}.nii.gz"))
    output = tmp_path / "report"
    code = main(["evaluate", "--fixed-dir", str(folders["fixed"]), "--moving-dir", str(folders["moving"]),
                 "--fixed-label-dir", str(folders["fixed_labels"]), "--moving-label-dir",
                 str(folders["moving_labels"]), "--methods", "suits-mind", "--iterations", "20", "--threads", "1",
                 "-o", str(output), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    recorded = json.loads((output / "results.json").read_text())
    assert [pair["name"] for pair in recorded["pairs"]] == ["case0__case0", "case1__case1"]
    means = recorded["summary"]["methods"]["suits-mind"]
    assert means["pairs"] == 2
    assert means["mean_dice"] == pytest.approx(
        np.mean([pair["methods"]["suits-mind"]["mean_dice"] for pair in recorded["pairs"]]))
    assert any(line.split()[:2] == ["suits-mind", "2"] for line in printed.splitlines())
    assert len(list((output / "figures").glob("*.png"))) == 2


def test_cli_evaluate_refuses_options_of_the_other_input_kind(tmp_path, capsys):
    dataset = tmp_path / "dataset.json"
    dataset.write_text("{}")
    output = str(tmp_path / "o")
    assert main(["evaluate", "--dataset", str(dataset), "--moving-dir", str(tmp_path), "-o", output]) == 2
    assert "--moving-dir" in capsys.readouterr().err
    assert main(["evaluate", "--fixed-dir", str(tmp_path), "--moving-dir", str(tmp_path), "--slice-index", "3",
                 "-o", output]) == 2
    assert "--slice" in capsys.readouterr().err
