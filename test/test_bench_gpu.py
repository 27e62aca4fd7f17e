"""benchmarks/bench_gpu.py: the CPU part runs in CI (tiny sizes), the GPU part reports itself as not measured."""

import importlib
import json
import pathlib
import subprocess
import sys

import pytest
import SimpleITK as sitk
import torch

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench_gpu():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("bench_gpu")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture
def keep_threads():
    """main() sets SimpleITK's and ITK's global thread counts; put them back."""
    import itk

    previous = (sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
                itk.MultiThreaderBase.GetGlobalDefaultNumberOfThreads())
    yield
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous[0])
    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(previous[1])


def test_quick_cpu_only_run(tmp_path):
    output = tmp_path / "gpu.json"
    command = [sys.executable, str(SCRIPT), "--quick", "--cpu-only", "--threads", "1", "--output", str(output)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    table = run.stdout
    rows = [line for line in table.splitlines() if line.startswith("phantom ")]
    assert any(line.startswith("phantom 2D 48x40 ") for line in rows)
    assert any(line.startswith("phantom 3D 32x28x24 ") for line in rows)
    assert "not measured" in rows[0]
    assert "GPU NOT MEASURED: --cpu-only" in table
    assert "reproduce: python " in table and "--cpu-only" in table.split("reproduce:")[1]

    report = json.loads(output.read_text())
    assert report["complete"] and report["threads"] == 1 and report["repeats"] == 1
    assert not report["gpu"]["measured"] and "--cpu-only" in report["gpu"]["reason"]
    if not torch.cuda.is_available():
        assert "torch sees no CUDA device" in report["gpu"]["reason"]
    assert [case["size"] for case in report["cases"]] == [[48, 40], [32, 28, 24]]
    for case in report["cases"]:
        cpu = case["cpu"]
        assert "error" not in cpu, cpu
        assert cpu["median_seconds"] > 0 and cpu["first_run_seconds"] > 0 and len(cpu["seconds"]) == 1
        split = cpu["median_split_seconds"]
        assert all(value >= 0 for value in split.values()) and split["features"] > 0 and split["descent"] > 0
        assert len(cpu["iterations"]) == 3
        assert cpu["error_mean_mm"] < case["initial_error_mean_mm"]  # the registration did something
        assert "gpu" not in case and "cpu_gpu_difference" not in case


def test_an_existing_output_is_kept(bench_gpu, tmp_path, capsys):
    output = tmp_path / "gpu.json"
    output.write_text("{}")
    with pytest.raises(SystemExit) as refused:
        bench_gpu.parse_arguments(["--quick", "--output", str(output)])
    assert refused.value.code == 2 and "--overwrite" in capsys.readouterr().err
    arguments = bench_gpu.parse_arguments(["--quick", "--output", str(output), "--overwrite"])
    assert arguments.sizes == [(48, 40), (32, 28, 24)] and arguments.repeats == arguments.cpu_repeats == 1


def test_without_cuda_the_gpu_is_reported_not_measured(bench_gpu):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    for cpu_only in (False, True):
        device, reason = bench_gpu.gpu_plan("cuda", cpu_only)
        assert device is None and "torch sees no CUDA device" in reason


def test_sizes_and_target(bench_gpu, tmp_path):
    assert bench_gpu.parse_size("192x160x192") == (192, 160, 192)
    for bad in ("181", "1x2x3x4", "19x40", "axb"):
        with pytest.raises(ValueError):
            bench_gpu.parse_size(bad)
    target = {"phantom": True, "size": [192, 160, 192], "gpu": {"median_seconds": 0.8}}
    h200 = {"measured": True, "name": "NVIDIA H200"}
    assert bench_gpu.target_verdict(target, h200) == "pass"
    assert bench_gpu.target_verdict({**target, "gpu": {"median_seconds": 1.2}}, h200) == "FAIL"
    assert bench_gpu.target_verdict(target, {"measured": True, "name": "Tesla T4"}) == "pass (not an H100/H200)"
    assert bench_gpu.target_verdict(target, {"measured": False}) == "not measured"
    assert bench_gpu.target_verdict({**target, "size": [181, 217]}, h200) == "-"
    assert bench_gpu.same_field({"cpu_gpu_difference": {"mean_mm": 0.01, "max_mm": 0.3}}) == "yes"
    assert bench_gpu.same_field({"cpu_gpu_difference": {"mean_mm": 0.01, "max_mm": 0.7}}) == "NO"


def test_report_with_a_gpu_row(bench_gpu, tmp_path, monkeypatch, capsys, keep_threads):
    """The report path of a GPU machine, with the CPU standing in for the GPU (no CUDA call is made)."""
    monkeypatch.setattr(bench_gpu, "gpu_plan", lambda gpu, cpu_only: (torch.device("cpu"), ""))
    monkeypatch.setattr(bench_gpu, "cuda_start_up", lambda device: 0.0)
    monkeypatch.setattr(bench_gpu, "gpu_record", lambda device, reason, start_up: {
        "measured": True, "device": "cpu", "name": "stand-in", "memory_gib": 0.0, "cuda": None, "cudnn": None,
        "start_up_seconds": 0.0, "cudnn_allow_tf32": False, "matmul_allow_tf32": False})
    output = tmp_path / "gpu.json"
    assert bench_gpu.main(["--sizes", "32x24", "--repeats", "1", "--threads", "1", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("phantom 2D 32x24 "))
    assert "x  " in row and "0.0000 / 0.0000" in row and " yes " in row  # speed-up, difference, same field
    assert "GPU: stand-in" in printed and "not in --sizes, not measured" in printed
    case = json.loads(output.read_text())["cases"][0]
    assert case["gpu"]["median_seconds"] > 0 and case["cpu"]["median_seconds"] > 0
    assert case["cpu_gpu_difference"] == {"max_mm": 0.0, "mean_mm": 0.0} and not case["iterations_differ"]
