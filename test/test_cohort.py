"""Cohorts: register_many and itk-suits register-batch (folders, summary, resume, failures, CSV, Dask)."""

import csv
import json
import os
import sys

import numpy as np
import pytest
import SimpleITK as sitk

import itk_suits
from itk_suits.cli import main
from itk_suits.errors import InputImageError, ParameterError, SuitsError
from itk_suits.registration.result import SAVED_FILES

from conftest import phantom

FAST = dict(grid_spacings=(12, 6), iterations=(40, 40))
FAST_CLI = ["--grid-spacings", "12", "6", "--iterations", "40", "--quiet"]
SHAPE = (48, 52)


def _write(image, folder, name):
    sitk.WriteImage(image, str(folder / name))
    return name


def write_pair(folder, name, seed, shift=3, labels=True, moving=None):
    """A phantom and the same phantom shifted by ``shift`` voxels along x, as files in ``folder``,
    with their label maps (the phantom's intensity levels); the CSV cells of the pair."""
    folder.mkdir(parents=True, exist_ok=True)
    array = phantom(SHAPE, seed=seed, smooth=False)
    label_array = np.digitize(array, [0.05, 0.4, 0.7]).astype(np.uint8)
    moving_array = np.roll(array, shift, axis=1) if moving is None else moving
    cells = {
        "name": name,
        "fixed": _write(sitk.GetImageFromArray(array), folder, f"{name}_fixed.nii.gz"),
        "moving": _write(sitk.GetImageFromArray(moving_array.astype(np.float32)), folder, f"{name}_moving.nii.gz"),
    }
    if labels:
        cells["fixed_labels"] = _write(sitk.GetImageFromArray(label_array), folder, f"{name}_fixed_labels.nii.gz")
        cells["moving_labels"] = _write(sitk.GetImageFromArray(np.roll(label_array, shift, axis=1)), folder,
                                        f"{name}_moving_labels.nii.gz")
    return cells


def write_csv(path, rows, columns=None):
    columns = columns or list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_summary(folder):
    with open(folder / "summary.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def test_a_cohort_writes_a_folder_per_pair_and_a_summary_where_dice_improves(tmp_path):
    inputs = tmp_path / "in"
    rows = [write_pair(inputs, "labelled", seed=1), write_pair(inputs, "plain", seed=2, labels=False)]
    pairs = write_csv(inputs / "pairs.csv", rows, ["fixed", "moving", "fixed_labels", "moving_labels", "name"])
    out = tmp_path / "out"
    rows = itk_suits.register_many(pairs, out, progress=False, **FAST)

    assert [(row["name"], row["status"]) for row in rows] == [("labelled", "ok"), ("plain", "ok")]
    assert set(os.listdir(out / "labelled")) == set(SAVED_FILES) | {"warped_labels.nii.gz", "summary.json"}
    assert set(os.listdir(out / "plain")) == set(SAVED_FILES) | {"summary.json"}
    warped_labels = sitk.ReadImage(str(out / "labelled" / "warped_labels.nii.gz"))
    assert warped_labels.GetPixelID() == sitk.sitkUInt8 and warped_labels.GetSize() == SHAPE[::-1]

    summary = read_summary(out)
    assert list(summary[0]) == ["name", "status", "seconds", "folding_percent", "mean_dice_initial", "mean_dice",
                                "dice_1", "dice_2", "dice_3", "error"]
    labelled, plain = summary
    assert float(labelled["mean_dice"]) > float(labelled["mean_dice_initial"]) + 0.1
    assert all(float(labelled[f"dice_{label}"]) > 0.8 for label in (1, 2, 3))
    assert float(labelled["folding_percent"]) == 0.0 and float(labelled["seconds"]) > 0
    assert plain["mean_dice"] == plain["dice_1"] == plain["error"] == "" and plain["folding_percent"] == "0"


def test_a_resumed_cohort_skips_finished_pairs_and_redoes_a_half_written_one(tmp_path, monkeypatch):
    inputs = tmp_path / "in"
    pairs = [write_pair(inputs, name, seed=seed, labels=False) for name, seed in (("a", 1), ("b", 2))]
    pairs = [{**pair, "fixed": str(inputs / pair["fixed"]), "moving": str(inputs / pair["moving"])}
             for pair in pairs]
    out = tmp_path / "out"
    itk_suits.register_many(pairs, out, progress=False, **FAST)
    finished = os.path.getmtime(out / "a" / "warped.nii.gz")
    # an interrupted run: b's folder lost its completion record and a file
    os.remove(out / "b" / "summary.json")
    os.remove(out / "b" / "transform.h5")

    import itk_suits.cohort.runner as runner

    registered = []

    def spy(batch, *arguments):
        registered.extend(pair.name for pair in batch)
        return register_pairs(batch, *arguments)

    register_pairs = runner.register_pairs
    monkeypatch.setattr(runner, "register_pairs", spy)
    rows = itk_suits.register_many(pairs, out, progress=False, **FAST)
    assert registered == ["b"]
    assert [row["status"] for row in rows] == ["skipped", "ok"]
    assert os.path.getmtime(out / "a" / "warped.nii.gz") == finished
    assert (out / "b" / "transform.h5").is_file()
    assert [row["status"] for row in read_summary(out)] == ["skipped", "ok"]

    rows = itk_suits.register_many(pairs, out, progress=False, **FAST)
    assert registered == ["b"] and [row["status"] for row in rows] == ["skipped", "skipped"]
    # the folder is recognised as this cohort's, but not with other parameters
    with pytest.raises(ParameterError, match="other parameters"):
        itk_suits.register_many(pairs, out, progress=False, grid_spacings=(12, 6), iterations=(40, 30))


def test_a_cohort_written_before_a_setting_or_column_existed_is_resumed(tmp_path):
    inputs = tmp_path / "in"
    pair = write_pair(inputs, "a", seed=1, labels=False)
    pairs = [{"fixed": str(inputs / pair["fixed"]), "moving": str(inputs / pair["moving"]), "name": "a"}]
    out = tmp_path / "out"
    itk_suits.register_many(pairs, out, progress=False, **FAST)
    # the records as an earlier version wrote them: no modalities setting, no modality columns
    for path, key in ((out / "cohort.json", "parameters"), (out / "a" / "summary.json", "inputs")):
        record = json.loads(path.read_text())
        for name in ("modalities", "fixed_modality", "moving_modality"):
            record[key].pop(name, None)
        path.write_text(json.dumps(record))
    rows = itk_suits.register_many(pairs, out, progress=False, **FAST)
    assert [row["status"] for row in rows] == ["skipped"]


def test_a_failing_pair_is_recorded_with_its_message_and_the_others_finish(tmp_path):
    inputs = tmp_path / "in"
    good = write_pair(inputs, "good", seed=1, labels=False)
    flat = write_pair(inputs, "flat", seed=2, labels=False, moving=np.full(SHAPE, 5.0))
    broken = write_pair(inputs, "broken", seed=3, labels=False)
    (inputs / broken["moving"]).write_bytes(b"not an image")
    pairs = write_csv(inputs / "pairs.csv", [good, flat, broken])
    out = tmp_path / "out"
    rows = itk_suits.register_many(pairs, out, progress=False, **FAST)

    assert [row["status"] for row in rows] == ["ok", "failed", "failed"]
    assert rows[1]["error"].startswith("InputImageError") and "constant" in rows[1]["error"]
    assert "broken" in rows[2]["error"] or "read" in rows[2]["error"].lower()
    summary = read_summary(out)
    assert [row["status"] for row in summary] == ["ok", "failed", "failed"]
    assert summary[1]["error"] == rows[1]["error"] and summary[1]["mean_dice"] == ""
    # a failed pair is not finished: the next run tries it again, the finished one is skipped
    rows = itk_suits.register_many(pairs, out, progress=False, **FAST)
    assert [row["status"] for row in rows] == ["skipped", "failed", "failed"]


@pytest.mark.parametrize("columns, edit, error, match", [
    (["fixed", "name"], None, ParameterError, r"missing column\(s\) \['moving'\]"),
    (["fixed", "moving", "labels"], None, ParameterError, r"unknown column\(s\) \['labels'\]"),
    (["fixed", "moving"], lambda rows: rows[1].update(moving="nowhere.nii.gz"), InputImageError,
     "line 3: moving file not found: .*nowhere.nii.gz"),
    (["fixed", "moving", "name"], lambda rows: rows[1].update(name="a"), ParameterError,
     "pairs 1 and 2 are both named 'a'"),
    (["fixed", "moving", "name"], lambda rows: rows.clear(), ParameterError, "no pair"),
], ids=["missing column", "unknown column", "missing file", "duplicate names", "no rows"])
def test_cohort_csv_mistakes_are_clear_errors_before_any_work(tmp_path, columns, edit, error, match):
    inputs = tmp_path / "in"
    rows = [write_pair(inputs, name, seed=1, labels=False) for name in ("a", "b")]
    rows = [{**row, "labels": "x.nii.gz"} for row in rows]
    if edit is not None:
        edit(rows)
    path = write_csv(inputs / "pairs.csv", [{column: row[column] for column in columns} for row in rows], columns)
    with pytest.raises(error, match=match) as raised:
        itk_suits.register_many(path, tmp_path / "out", progress=False)
    assert isinstance(raised.value, SuitsError)
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_a_cohort_output_is_not_written_into(tmp_path):
    pair = write_pair(tmp_path / "in", "a", seed=1, labels=False)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds no cohort run"):
        itk_suits.register_many([(tmp_path / "in" / pair["fixed"], tmp_path / "in" / pair["moving"])], out)
    assert os.listdir(out) == ["notes.txt"]


def test_register_batch_command_runs_a_cohort_and_ends_errors_in_one_line(tmp_path, capsys):
    inputs = tmp_path / "in"
    good = write_pair(inputs, "good", seed=1)
    flat = write_pair(inputs, "flat", seed=2, labels=False, moving=np.full(SHAPE, 5.0))
    both = write_csv(inputs / "both.csv", [good, flat])
    out = str(tmp_path / "out")

    assert main(["register-batch", str(both), "-o", out, *FAST_CLI]) == 1  # a pair failed
    printed = capsys.readouterr().out
    assert "flat: failed: InputImageError" in printed and "1 registered, 0 finished before, 1 failed" in printed
    assert [row["status"] for row in read_summary(tmp_path / "out")] == ["ok", "failed"]

    only_good = write_csv(inputs / "good.csv", [good])
    assert main(["register-batch", str(only_good), "-o", out, *FAST_CLI]) == 0
    assert "0 registered, 1 finished before, 0 failed" in capsys.readouterr().out

    bad_csv = write_csv(inputs / "bad.csv", [{**good, "label": "x"}])
    for arguments in ([str(bad_csv), "-o", out], [str(only_good), "-o", str(inputs)],
                      [str(only_good), "-o", out, "--workers", "2"]):
        assert main(["register-batch", *arguments, "--quiet"]) == 2
        error = capsys.readouterr().err
        assert error.startswith("itk-suits: error: ") and error.count("\n") == 1, error


def test_without_dask_a_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    pair = write_pair(tmp_path / "in", "a", seed=1, labels=False)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(ParameterError, match=r'pip install "itk-suits\[dask\]"'):
        itk_suits.register_many([(tmp_path / "in" / pair["fixed"], tmp_path / "in" / pair["moving"])],
                                tmp_path / "out", scheduler="local", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_local_dask_cluster_gives_the_summary_of_a_local_batched_run(tmp_path):
    pytest.importorskip("distributed")
    inputs = tmp_path / "in"
    pairs = [write_pair(inputs, name, seed=seed) for name, seed in (("a", 1), ("b", 2))]
    pairs = [{key: value if key == "name" else str(inputs / value) for key, value in pair.items()} for pair in pairs]
    local = itk_suits.register_many(pairs, tmp_path / "local", batch_size=2, progress=False, **FAST)
    on_dask = itk_suits.register_many(pairs, tmp_path / "dask", scheduler="local", workers=2, progress=False,
                                      **FAST)

    def without_time(rows):
        return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]

    assert [row["status"] for row in on_dask] == ["ok", "ok"]
    assert without_time(on_dask) == without_time(local)
    for name in ("a", "b"):
        fields = [sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / run / name / "displacement.nii.gz")))
                  for run in ("local", "dask")]
        np.testing.assert_allclose(fields[0], fields[1], rtol=0, atol=1e-4)
