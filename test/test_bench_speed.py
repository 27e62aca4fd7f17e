"""benchmarks/bench_speed.py: its smoke check runs without data (the scale part) and, where the data is, on it."""

import argparse
import importlib
import json
import pathlib
import subprocess
import sys

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = REPOSITORY / "benchmarks"
SCRIPT = BENCHMARKS / "bench_speed.py"
DATA = REPOSITORY.parent / "shared" / "data"


@pytest.fixture(scope="module")
def bench_speed():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("bench_speed")
    finally:
        sys.path.remove(str(BENCHMARKS))


def run_script(*arguments):
    run = subprocess.run([sys.executable, str(SCRIPT), *map(str, arguments)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def check_scale(report: dict, printed: str) -> None:
    """One SUITS row for the 32x32x20 volume: time, its own peak memory, an error below the initial one."""
    assert report["complete"] and report["repeats"] == 1 and report["skip_elastix"]
    (record,) = report["scale"]["records"]
    assert record["size"] == [32, 32, 20] and record["method"] == "SUITS"
    assert record["median_seconds"] > 0 and len(record["runs"]) == 1
    run = record["runs"][0]
    # the worker's own peak, not the ru_maxrss it inherits from the benchmark process
    assert 0 < record["peak_before_call_gib"] <= record["peak_rss_gib"] <= run["ru_maxrss_gib"]
    assert record["error_mean_mm"] < record["initial_error_mean_mm"]
    assert pathlib.Path(report["scale"]["plot"]).is_file()
    assert any(line.startswith("32x32x20  20,480  SUITS ") for line in printed.splitlines())
    assert "512x512x300 peak host memory < 8 GiB: not measured" in printed
    assert "reproduce: python " in printed and "--skip-elastix" in printed.split("reproduce:")[1]


def test_quick_run_without_data(tmp_path):
    """What CI runs: no data folder, so the real pairs are reported as not measured and the scale part runs."""
    output = tmp_path / "speed.json"
    printed = run_script("--quick", "--skip-elastix", "--scale-sizes", "32x32x20", "--data", tmp_path / "no-data",
                         "--output", output)
    report = json.loads(output.read_text())
    check_scale(report, printed)
    assert output.with_suffix(".png").is_file()
    for part in ("brainweb", "prostate", "chaos"):
        assert "no data" in report[part]["skipped"]
        assert f"NOT MEASURED  {part}:" in printed
    assert "chaos SUITS/elastix <= 0.3 at equal or better accuracy: not measured" in printed


@pytest.mark.skipif(not DATA.is_dir(), reason=f"no benchmark data in {DATA}")
def test_quick_run_on_the_data(tmp_path):
    output = tmp_path / "speed.json"
    printed = run_script("--quick", "--skip-elastix", "--scale-sizes", "32x32x20", "--output", output)
    report = json.loads(output.read_text())
    check_scale(report, printed)
    (brainweb,) = report["brainweb"]["pairs"]
    assert brainweb["pair"] == "seed 10"
    suits = brainweb["methods"]["SUITS"]
    assert suits["error_mean_mm"] < brainweb["methods"]["initial"]["error_mean_mm"]
    (prostate,) = report["prostate"]["pairs"]
    assert prostate["pair"] == "obs060" and prostate["fixed_size"] == [69, 69, 64]
    initial, suits = prostate["methods"]["initial"], prostate["methods"]["SUITS"]
    assert initial["landmarks"] == suits["landmarks"] == 4 and suits["folding_percent"] >= 0
    assert 0 < initial["dice"] < 1 and 0 < suits["dice"] < 1 and suits["tre_mean_mm"] > 0
    (chaos,) = report["chaos"]["pairs"]
    assert chaos["pair"] == "31 <- 32" and chaos["fixed_size"][:2] == [64, 64]  # --quick: subsampled by 4
    assert chaos["methods"]["SUITS"]["dice_mean"] > chaos["methods"]["initial"]["dice_mean"]
    for title in ("BrainWeb T1 (fixed)", "Prostate MR (fixed) <- ultrasound", "CHAOS T2-SPIR"):
        assert title in printed


def test_an_existing_output_is_kept(bench_speed, tmp_path, capsys):
    output = tmp_path / "speed.json"
    for existing in (output, output.with_suffix(".png")):
        existing.write_text("{}")
        with pytest.raises(SystemExit) as refused:
            bench_speed.parse_arguments(["--quick", "--output", str(output)])
        assert refused.value.code == 2 and "--overwrite" in capsys.readouterr().err
        existing.unlink()
    arguments = bench_speed.parse_arguments(["--quick", "--output", str(output)])
    assert arguments.repeats == 1 and arguments.pairs == ["obs060"] and arguments.chaos_pairs == [(31, 32)]
    assert arguments.sizes == [(41, 41, 24), (63, 63, 37)] and arguments.elastix_max_voxels == 50_000


def test_arguments(bench_speed, tmp_path):
    assert bench_speed.scale_size("20") == bench_speed.scale_size("20M") == (324, 324, 190)
    assert bench_speed.scale_size("64x48x40") == (64, 48, 40)
    for bad in ("0.001", "19x40x40", "64x64", "big"):
        with pytest.raises(ValueError):
            bench_speed.scale_size(bad)
    assert bench_speed.parse_suits_options(["samples=None", "channels=None", "grid_spacings=(8, 5, 3)",
                                            "features=mind"]) == {
        "samples": None, "channels": None, "grid_spacings": (8, 5, 3), "features": "mind"}
    for bad in (["samples"], ["threads=2"]):
        with pytest.raises(ValueError):
            bench_speed.parse_suits_options(bad)
    assert bench_speed.prostate_pair("60") == bench_speed.prostate_pair("obs060") == "obs060"
    assert bench_speed.chaos_pair("31:32") == (31, 32)
    for bad in ("obs108", "x"):
        with pytest.raises(ValueError):
            bench_speed.prostate_pair(bad)
    with pytest.raises(ValueError):
        bench_speed.chaos_pair("31-32")
    arguments = bench_speed.parse_arguments(["--large", "--scale-sizes", "0.1", "--suits-option", "samples=None",
                                             "--output", str(tmp_path / "s.json")])
    assert arguments.sizes == [(55, 55, 33), (512, 512, 300)] and arguments.options == {"samples": None}
    assert arguments.repeats == 3 and arguments.elastix_max_voxels == 25_000_000


def test_target_verdicts(bench_speed):
    arguments = argparse.Namespace(parts=list(bench_speed.PARTS), skip_elastix=False, quick=False)
    elastix = bench_speed.elastix_name(bench_speed.ELASTIX_MAPS["prostate"])

    def report(ratio, dice, tre):
        return {"prostate": {"means": {
            "SUITS": {"ratio_to_elastix": ratio, "dice": dice, "tre_mean_mm": tre},
            elastix: {"dice": 0.8, "tre_mean_mm": 3.0}}}}

    assert bench_speed.ratio_verdict("prostate", report(0.2, 0.8004, 2.9), "SUITS", arguments).startswith("PASS")
    assert bench_speed.ratio_verdict("prostate", report(0.4, 0.85, 2.9), "SUITS", arguments).startswith("FAIL")
    assert "dice" in bench_speed.ratio_verdict("prostate", report(0.2, 0.79, 2.9), "SUITS", arguments)
    assert "tre_mean_mm" in bench_speed.ratio_verdict("prostate", report(0.2, 0.8, 3.02), "SUITS", arguments)
    quick = argparse.Namespace(**{**vars(arguments), "quick": True})
    assert bench_speed.ratio_verdict("prostate", report(0.2, 0.8, 2.9), "SUITS", quick).startswith("not measured")
    failed = {"prostate": {"means": {"SUITS": {"failed_pairs": 1}, elastix: {}}}}
    assert bench_speed.ratio_verdict("prostate", failed, "SUITS", arguments).startswith("not measured")

    def scale(record):
        return {"scale": {"records": [{"size": [512, 512, 300], "method": "SUITS", **record}]}}

    assert bench_speed.memory_verdict(scale({"peak_rss_gib": 7.5}), "SUITS").startswith("PASS")
    assert bench_speed.memory_verdict(scale({"peak_rss_gib": 8.5}), "SUITS").startswith("FAIL")
    assert bench_speed.memory_verdict(scale({"error": "worker killed"}), "SUITS").startswith("not measured")
    assert bench_speed.memory_verdict({}, "SUITS").startswith("not measured")
