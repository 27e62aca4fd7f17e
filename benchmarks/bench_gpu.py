"""Time SUITS registrations on the CPU and on a CUDA GPU with the same code path, and compare their fields.

Every registration is ``itk_suits.register(fixed, moving, features=F,
device=D)`` with the library's default schedule, once with ``D = "cpu"`` and
once with ``D = "cuda"`` (``--gpu``): the same code, only the torch device
differs. No data files are needed.

Cases
-----
Synthetic phantoms made in code (``--sizes``, x by y [by z] voxels of 1 mm;
default ``181x217`` (a BrainWeb slice), ``80x80x64`` (0.4 M voxels) and
``192x160x192`` (the Learn2Reg size, 5.9 M voxels)): random blobs (white noise
smoothed by a Gaussian of 2.5 voxels); the moving image is the same anatomy
under a non-monotonic intensity mapping (another "modality"), deformed by
``itk_suits.demo.known_deformation`` (largest displacement 4 % of the smallest
side, control spacing 30 % of it); both get a little noise. ``--data`` adds
real pairs if they are present: the BrainWeb T1 slice against the PD slice
deformed by a known field, and the spinal-cord T2w against T1w volume
(``../shared/data``).

Timing
------
Per case and device: one warm-up run (its time is reported as "first run"),
then ``--repeats`` timed runs (``--cpu-repeats`` on the CPU); the median and
minimum wall-clock times of the whole ``register`` call are reported: reading
and checking the inputs, resampling the moving image onto the fixed grid,
feature extraction, the multi-scale descent, the field and transform as
SimpleITK objects and the warped image. On CUDA the clock is read after
``torch.cuda.synchronize``. The start-up of CUDA itself (the first
``torch.zeros(1, device="cuda")``) is measured once, before any registration,
and reported separately; the first run of each case also pays for loading
kernels, which is why it is reported apart from the timed runs.

The time of a run is split without changing the package: the features are
computed by a wrapper around the feature extractor (passed to ``register`` as
an extractor object) that synchronises before and after each call (the
package's next host-to-device copy waits for the features anyway); the descent
ends at the last iteration callback (a synchronising convergence check, or an
explicit synchronisation at the last iteration). Inputs: everything before
the features; outputs: everything after the descent (the dense field at full
resolution, its copy to the host, the SimpleITK field, transform and warped
image, done on the CPU whatever the device).

Threads: torch, SimpleITK and ITK get ``--threads`` (default: torch's own
setting); the package itself runs torch on one thread below 2^18 voxels on the
CPU (its default), which the table states per case.

Same result on both devices: the displacement fields (mm) of the last timed CPU
and GPU runs are compared voxel by voxel; max and mean of the length of the
difference over the whole image must stay within ``TOLERANCE_MAX_MM`` and
``TOLERANCE_MEAN_MM`` (``benchmarks/README.md``, "GPU", explains the choice).
Against the known deformation, the mean error over the image (BrainWeb: inside
the head) is given for each device as well.

Target: 192x160x192 registered end to end in at most 1 s on one H100/H200 GPU
(median of the timed runs).

Without a CUDA device (or with ``--cpu-only``) the CPU part runs and the GPU
part is reported as not measured, with the reason; the exit status is 0.

Usage::

    python benchmarks/bench_gpu.py --repeats 5 --cpu-repeats 1 --output /tmp/gpu.json   # on a GPU machine
    python benchmarks/bench_gpu.py --quick --cpu-only --threads 1                          # CI: tiny, CPU only
    python benchmarks/bench_gpu.py --sizes 181x217 96x96x96 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # benchmark this checkout, installed or not

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
import torch  # noqa: E402

import itk_suits  # noqa: E402
from support import number, set_threads, table, versions  # noqa: E402
from itk_suits.demo import known_deformation  # noqa: E402
from itk_suits.features import get_feature_extractor  # noqa: E402
from itk_suits.features.base import FeatureExtractor  # noqa: E402
from itk_suits.interop.transforms import displacement_field_from_index  # noqa: E402
from itk_suits.registration.parameters import SINGLE_THREAD_VOXELS  # noqa: E402

DEFAULT_SIZES = ("181x217", "80x80x64", "192x160x192")
#: ``--quick``: tiny sizes for CI (every side at least the coarsest control spacing, 20 voxels).
QUICK_SIZES = ("48x40", "32x28x24")
DEFAULT_DATA = REPOSITORY.parent / "shared" / "data"
DEFAULT_OUTPUT = REPOSITORY / "benchmarks" / "results" / "gpu.json"
#: The smallest side the default schedule accepts (its coarsest control spacing, voxels).
MINIMUM_SIDE = 20

#: The target: this size (x, y, z) end to end in at most this many seconds on one H100/H200.
TARGET_SIZE = (192, 160, 192)
TARGET_SECONDS = 1.0
TARGET_GPUS = ("H100", "H200")

#: CPU and GPU fields must agree within these (length of the difference, mm, over the image).
TOLERANCE_MEAN_MM = 0.05
TOLERANCE_MAX_MM = 0.5

#: Seed of the phantoms and of their known deformations (0-14 are used by the other benchmarks).
SEED = 20
#: Known deformation: largest displacement and control spacing as fractions of the smallest side.
DEFORMATION_MAGNITUDE = 0.04
DEFORMATION_CONTROL_SPACING = 0.3
#: Size of the phantom's blobs: sigma of the Gaussian that smooths white noise, voxels.
TEXTURE_SIGMA = 2.5
#: Noise added to both phantom images (their intensities span [0, 1]).
NOISE = 0.02
#: Real BrainWeb voxels above this fraction of the maximum are "inside the head" for the error.
HEAD_THRESHOLD = 0.1


# --- cases -----------------------------------------------------------------------------------------


@dataclass
class Case:
    """One registration problem: the known field (mm, ``(*shape, ndim)``) if any, and where it is scored
    (``inside``; None: everywhere)."""

    name: str
    fixed: sitk.Image
    moving: sitk.Image
    true_field: Optional[np.ndarray] = None
    inside: Optional[np.ndarray] = None

    @property
    def size(self) -> tuple[int, ...]:
        return tuple(self.fixed.GetSize())

    @property
    def voxels(self) -> int:
        return int(np.prod(self.size))


def parse_size(text: str) -> tuple[int, ...]:
    """``"181x217"`` -> ``(181, 217)`` (x, y[, z]); raises ValueError for anything else."""
    try:
        size = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size {text!r} is not of the form 181x217 or 192x160x192") from None
    if len(size) not in (2, 3):
        raise ValueError(f"size {text!r} must have 2 or 3 sides")
    if min(size) < MINIMUM_SIDE:
        raise ValueError(f"size {text!r}: every side must be at least {MINIMUM_SIDE} voxels "
                         "(the coarsest control spacing of the default schedule)")
    return size


def phantom(shape: tuple[int, ...], rng: np.random.Generator, sigma: float = TEXTURE_SIGMA) -> np.ndarray:
    """Array-order ``shape`` in [0, 1]: white noise smoothed by a Gaussian of ``sigma`` voxels (random blobs)."""
    noise = sitk.GetImageFromArray(rng.standard_normal(shape, dtype=np.float32))
    blobs = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(noise, sigma))
    return (blobs - blobs.min()) / (blobs.max() - blobs.min())


def _image(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))  # spacing 1 mm, origin 0, identity direction
    return image


def phantom_case(size: tuple[int, ...], seed: int = SEED) -> Case:
    """Fixed phantom, and the same anatomy in another modality deformed by a known field."""
    rng = np.random.default_rng(seed)
    anatomy = phantom(size[::-1], rng)
    other_modality = (np.sin(3.0 * np.pi * anatomy) ** 2 + 0.3 * anatomy) / 1.3
    side = min(size)
    moving, true_index = known_deformation(
        _image(other_modality), magnitude=max(1.5, DEFORMATION_MAGNITUDE * side),
        control_spacing=max(10.0, DEFORMATION_CONTROL_SPACING * side), seed=seed,
    )
    fixed = anatomy + NOISE * rng.standard_normal(anatomy.shape, dtype=np.float32)
    moving_array = sitk.GetArrayFromImage(moving)
    moving_array += NOISE * rng.standard_normal(moving_array.shape, dtype=np.float32)
    fixed_image = _image(fixed)
    true_field = sitk.GetArrayFromImage(displacement_field_from_index(true_index, fixed_image))
    return Case(name=f"phantom {len(size)}D {'x'.join(map(str, size))}", fixed=fixed_image,
                moving=_image(moving_array), true_field=true_field)


def real_cases(data: Path, note: Callable[[str], None]) -> list[Case]:
    """The real pairs of ``data`` that are present (BrainWeb 2D with a known field, spinal cord 3D)."""
    cases = []
    brainweb = data / "itk_examples_brainweb_slices"
    t1, pd = brainweb / "BrainT1Slice.png", brainweb / "BrainProtonDensitySlice.png"
    if t1.is_file() and pd.is_file():
        def read(path):
            image = sitk.VectorIndexSelectionCast(sitk.ReadImage(str(path)), 0, sitk.sitkFloat32)
            image.SetSpacing((1.0, 1.0))
            image.SetOrigin((0.0, 0.0))
            image.SetDirection((1.0, 0.0, 0.0, 1.0))
            return image
        fixed = read(t1)
        moving, true_index = known_deformation(read(pd), magnitude=8.0, control_spacing=40.0, seed=10)
        array = sitk.GetArrayViewFromImage(fixed)
        cases.append(Case("BrainWeb T1 <- PD (known field)", fixed, moving,
                          sitk.GetArrayFromImage(displacement_field_from_index(true_index, fixed)),
                          array > HEAD_THRESHOLD * float(array.max())))
    else:
        note(f"real pair skipped: no BrainWeb slices in {brainweb}")
    spine = data / "sct_testing_data"
    t2, t1w = spine / "t2" / "t2.nii.gz", spine / "t1" / "t1w.nii.gz"
    if t2.is_file() and t1w.is_file():
        cases.append(Case("spinal cord T2w <- T1w", sitk.ReadImage(str(t2), sitk.sitkFloat32),
                          sitk.ReadImage(str(t1w), sitk.sitkFloat32)))
    else:
        note(f"real pair skipped: no spinal-cord T2w/T1w volumes in {spine}")
    return cases


# --- timing ----------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    """Wait for the queued GPU work (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TimedFeatures(FeatureExtractor):
    """The extractor ``features`` names, built on first use and timed per call (synchronised on CUDA)."""

    def __init__(self, features: str, device: torch.device) -> None:
        self.features = features
        self.device = device
        self.name = str(features)
        self.inner: Optional[FeatureExtractor] = None
        self.calls: list[tuple[float, float]] = []

    def _extractor(self) -> FeatureExtractor:
        if self.inner is None:  # inside register(), as when it is given the name
            self.inner = get_feature_extractor(self.features)
        return self.inner

    def channels(self, ndim):
        return self._extractor().channels(ndim)

    def check_modality(self, role, modality, ndim=None):
        self._extractor().check_modality(role, modality, ndim)

    def __call__(self, image, role="fixed", modality=None):
        synchronize(self.device)
        start = time.perf_counter()
        features = self._extractor()(image, role=role, modality=modality)
        synchronize(self.device)
        self.calls.append((start, time.perf_counter()))
        return features


def onnx_providers(extractor) -> list[str]:
    """onnxruntime providers of an extractor and of its concatenated parts (empty for MIND)."""
    parts = getattr(extractor, "extractors", (extractor,))
    nested = [getattr(part, "_extractors", {}).values() for part in parts]  # "pretrained" keeps one per ndim
    found = [getattr(p, "providers", None) for p in parts] + [getattr(p, "providers", None)
                                                               for group in nested for p in group]
    return sorted({provider for providers in found if providers for provider in providers})


def one_run(case: Case, device: torch.device, features: str) -> dict:
    """One registration; its wall time, the split and the displacement field in mm."""
    extractor = TimedFeatures(features, device)
    descent_end = {}

    def on_iteration(info):
        if info.scale == info.scales - 1 and info.iteration == info.iterations:
            synchronize(device)  # a last iteration that is not a convergence check does not synchronise
        descent_end["time"] = time.perf_counter()

    synchronize(device)
    start = time.perf_counter()
    result = itk_suits.register(case.fixed, case.moving, features=extractor, device=str(device),
                                callback=on_iteration)
    synchronize(device)
    end = time.perf_counter()
    features_seconds = sum(stop - begin for begin, stop in extractor.calls)
    descent = descent_end["time"] - extractor.calls[-1][1]
    outputs = end - descent_end["time"]
    total = end - start
    return {
        "seconds": total,
        "split": {"inputs": total - features_seconds - descent - outputs, "features": features_seconds,
                  "descent": descent, "outputs": outputs},
        "reported_seconds": result.seconds,
        "descent_log_seconds": sum(entry["seconds"] for entry in result.log),
        "iterations": [entry["iterations"] for entry in result.log],
        "device": result.device,
        "onnx_providers": onnx_providers(extractor.inner),
        "field": sitk.GetArrayFromImage(result.displacement_field),
    }


def difference(a: np.ndarray, b: np.ndarray) -> dict:
    """Max and mean of ``|a - b|`` (vector length per voxel) over the image, mm."""
    length = np.linalg.norm(a - b, axis=-1)
    return {"max_mm": float(length.max()), "mean_mm": float(length.mean())}


def field_error(case: Case, field: np.ndarray) -> Optional[float]:
    """Mean ``|u - u_true|`` over the image or ``case.inside``, mm (None without a known field)."""
    if case.true_field is None:
        return None
    error = np.linalg.norm(field - case.true_field, axis=-1)
    return float((error if case.inside is None else error[case.inside]).mean())


def measure(case: Case, device: torch.device, features: str, repeats: int, threads: int,
            progress: Callable[[str], None]) -> tuple[dict, Optional[np.ndarray]]:
    """Warm-up and timed runs on one device: a JSON-ready record and the last field (None if it failed)."""
    torch_threads = 1 if device.type == "cpu" and case.voxels < SINGLE_THREAD_VOXELS else threads
    record = {"device": str(device), "torch_threads": torch_threads if device.type == "cpu" else None}
    progress(f"{case.name} on {device}: 1 warm-up + {repeats} timed run(s)")
    try:
        first = one_run(case, device, features)
        runs = []
        for _ in range(repeats):
            if runs:
                del runs[-1]["field"]  # keep the fields of the first and the last run only
            runs.append(one_run(case, device, features))
    except Exception as error:  # a failing run is a result to report, not a crash
        record["error"] = f"{type(error).__name__}: {' '.join(str(error).split())}"
        progress(f"    FAILED: {record['error']}")
        return record, None
    times = [run["seconds"] for run in runs]
    record.update({
        "first_run_seconds": first["seconds"],
        "seconds": times, "median_seconds": statistics.median(times), "min_seconds": min(times),
        "median_split_seconds": {part: statistics.median(run["split"][part] for run in runs)
                                 for part in runs[0]["split"]},
        "splits": [run["split"] for run in runs],
        "reported_seconds": [run["reported_seconds"] for run in runs],
        "descent_log_seconds": [run["descent_log_seconds"] for run in runs],
        "iterations": runs[-1]["iterations"],
        "iterations_first_run": first["iterations"],
        "repeat_difference": difference(first["field"], runs[-1]["field"]),
        "error_mean_mm": field_error(case, runs[-1]["field"]),
        "onnx_providers": runs[-1]["onnx_providers"],
    })
    progress(f"    median {record['median_seconds']:.3f} s (first run {first['seconds']:.3f} s)")
    return record, runs[-1]["field"]


# --- the GPU -----------------------------------------------------------------------------------------


def gpu_plan(gpu: str, cpu_only: bool) -> tuple[Optional[torch.device], str]:
    """The CUDA device to measure, or None and why the GPU is not measured."""
    if not torch.cuda.is_available():
        build = f"this torch ({torch.__version__}) is " + (
            f"built for CUDA {torch.version.cuda} but finds no GPU" if torch.version.cuda else "built without CUDA")
        reason = f"torch sees no CUDA device ({build})"
        return None, (f"--cpu-only, and {reason}" if cpu_only else reason)
    if cpu_only:
        return None, "--cpu-only was given (torch does see a CUDA device)"
    try:
        device = torch.device(gpu)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type != "cuda":
        raise SystemExit(f"--gpu {gpu!r} is not a CUDA device (use cuda or cuda:N)")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise SystemExit(f"--gpu {gpu!r}: torch sees {torch.cuda.device_count()} CUDA device(s), numbered from 0")
    return device, ""


def cuda_start_up(device: torch.device) -> float:
    """Seconds of the first CUDA call: context creation on ``device``."""
    start = time.perf_counter()
    torch.zeros(1, device=device)
    torch.cuda.synchronize(device)
    return time.perf_counter() - start


def gpu_record(device: Optional[torch.device], reason: str, start_up: Optional[float]) -> dict:
    if device is None:
        return {"measured": False, "reason": reason}
    properties = torch.cuda.get_device_properties(device)
    return {
        "measured": True, "device": str(device), "name": properties.name,
        "memory_gib": properties.total_memory / 2**30, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "start_up_seconds": start_up,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


# --- report ----------------------------------------------------------------------------------------


def is_target(case: dict) -> bool:
    return case["phantom"] and tuple(case["size"]) == TARGET_SIZE


def target_verdict(case: dict, gpu: dict) -> str:
    if not is_target(case):
        return "-"
    row = case.get("gpu")
    if not gpu["measured"]:
        return "not measured"
    if row is None or "error" in row:
        return "FAILED"
    verdict = "pass" if row["median_seconds"] <= TARGET_SECONDS else "FAIL"
    return verdict if any(name in gpu["name"] for name in TARGET_GPUS) else verdict + " (not an H100/H200)"


def same_field(case: dict) -> str:
    found = case.get("cpu_gpu_difference")
    if found is None:
        return "-"
    ok = found["mean_mm"] <= TOLERANCE_MEAN_MM and found["max_mm"] <= TOLERANCE_MAX_MM
    return "yes" if ok else "NO"


def _seconds(row: Optional[dict], not_measured: str) -> str:
    if row is None:
        return not_measured
    return "FAILED" if "error" in row else number(row["median_seconds"], 3)


def main_table(cases: list[dict], gpu: dict) -> str:
    header = ["case", "voxels", "CPU thr", "CPU s", "GPU s", "speed-up", "diff mean / max mm",
              "same field", f"{TARGET_SECONDS:g} s target"]
    lines = []
    for case in cases:
        cpu, gpu_row = case.get("cpu"), case.get("gpu")
        speed_up = "-"
        if cpu and gpu_row and "error" not in cpu and "error" not in gpu_row:
            speed_up = f"{cpu['median_seconds'] / gpu_row['median_seconds']:.1f}x"
        found = case.get("cpu_gpu_difference")
        lines.append([
            case["case"], f"{case['voxels']:,}", str(cpu.get("torch_threads", "-")) if cpu else "-",
            _seconds(cpu, "-"), _seconds(gpu_row, "not measured"), speed_up,
            "-" if found is None else f"{found['mean_mm']:.4f} / {found['max_mm']:.4f}",
            same_field(case), target_verdict(case, gpu),
        ])
    return table(header, lines)


def _error(row: dict, case: dict) -> str:
    if row["error_mean_mm"] is None:
        return "-"
    return f"{row['error_mean_mm']:.3f} ({case['initial_error_mean_mm']:.3f})"


def split_table(cases: list[dict]) -> str:
    header = ["case", "device", "first run s", "median s", "min s", "inputs s", "features s", "descent s",
              "outputs s", "iterations", "error mm (initial)"]
    lines = []
    for case in cases:
        for key in ("cpu", "gpu"):
            row = case.get(key)
            if row is None:
                continue
            if "error" in row:
                lines.append([case["case"], row["device"], "FAILED (below)"] + [""] * (len(header) - 3))
                continue
            split = row["median_split_seconds"]
            lines.append([case["case"], row["device"], number(row["first_run_seconds"], 3),
                          number(row["median_seconds"], 3), number(row["min_seconds"], 3)]
                         + [number(split[part], 3) for part in ("inputs", "features", "descent", "outputs")]
                         + ["/".join(map(str, row["iterations"])), _error(row, case)])
    return table(header, lines)


def remarks(record: dict) -> list[str]:
    """Failures, runs that differ between repeats or in their iterations, learned features on CUDA in a CPU run."""
    lines = []
    for key in ("cpu", "gpu"):
        row = record.get(key)
        if row is None:
            continue
        if "error" in row:
            lines.append(f"FAILED  {record['case']} on {row['device']}: {row['error']}")
            continue
        if row["repeat_difference"]["max_mm"] > 0:
            lines.append(f"NOTE  {record['case']}: runs on {row['device']} differ from each other by up to "
                         f"{row['repeat_difference']['max_mm']:.2g} mm (warm-up against last run)")
        if key == "cpu" and any("CUDA" in provider for provider in row["onnx_providers"]):
            lines.append(f"NOTE  {record['case']}: the CPU run computed its learned features with "
                         f"{row['onnx_providers']} (onnxruntime chooses CUDA by itself)")
    if record.get("iterations_differ"):
        lines.append(f"NOTE  {record['case']}: CPU and GPU ran different iterations per scale "
                     f"({record['cpu']['iterations']} against {record['gpu']['iterations']})")
    return lines


def json_ready(value):
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- main ------------------------------------------------------------------------------------------


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", metavar="SIZE",
                        help="phantom sizes x by y [by z], e.g. 181x217 192x160x192 "
                             f"(default {' '.join(DEFAULT_SIZES)})")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny sizes ({' '.join(QUICK_SIZES)}) and 1 timed run: a smoke check for CI")
    parser.add_argument("--repeats", type=int,
                        help="timed runs per case and device after 1 warm-up (default 3; 1 with --quick)")
    parser.add_argument("--cpu-repeats", type=int,
                        help="timed runs on the CPU instead, e.g. 1 to save time (default: --repeats)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch, SimpleITK and ITK threads "
                             f"(default: torch's setting, here {torch.get_num_threads()})")
    parser.add_argument("--cpu-only", action="store_true", help="run the CPU part only (CI)")
    parser.add_argument("--gpu", default="cuda", help="the CUDA device to measure (default cuda)")
    parser.add_argument("--features", default="mind",
                        help="feature choice passed to register (default mind; a model folder runs onnxruntime)")
    parser.add_argument("--data", type=Path, nargs="?", const=DEFAULT_DATA,
                        help="also time the real pairs in this folder if present "
                             "(default folder <repo>/../shared/data)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"JSON file with every number (default {DEFAULT_OUTPUT.relative_to(REPOSITORY)})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    arguments = parser.parse_args(argv)
    if arguments.repeats is None:
        arguments.repeats = 1 if arguments.quick else 3
    if arguments.cpu_repeats is None:
        arguments.cpu_repeats = arguments.repeats
    if min(arguments.threads, arguments.repeats, arguments.cpu_repeats) < 1:
        parser.error("--threads, --repeats and --cpu-repeats must be positive")
    if arguments.quick and arguments.sizes:
        parser.error("--quick chooses the sizes; give either --quick or --sizes")
    try:
        arguments.sizes = [parse_size(size) for size in (arguments.sizes or (QUICK_SIZES if arguments.quick
                                                                             else DEFAULT_SIZES))]
    except ValueError as error:
        parser.error(str(error))
    if arguments.output.exists() and not arguments.overwrite:
        parser.error(f"{arguments.output} exists; pass --overwrite to replace it or choose another --output")
    return arguments


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    command = "python " + shlex.join(sys.argv if argv is None else [sys.argv[0], *argv])
    started = time.perf_counter()

    def progress(message):
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    set_threads(arguments.threads)
    gpu_device, reason = gpu_plan(arguments.gpu, arguments.cpu_only)
    start_up = cuda_start_up(gpu_device) if gpu_device is not None else None
    gpu = gpu_record(gpu_device, reason, start_up)
    cpu = torch.device("cpu")

    notes: list[str] = []
    progress("making the phantoms")
    cases = [phantom_case(size) for size in arguments.sizes]
    if arguments.data is not None:
        cases += real_cases(arguments.data.resolve(), notes.append)

    records = [{"case": case.name, "size": list(case.size), "voxels": case.voxels,
                "phantom": case.name.startswith("phantom"),
                "initial_error_mean_mm": field_error(case, np.zeros_like(case.true_field))
                if case.true_field is not None else None} for case in cases]
    report = {
        "command": command, "complete": False, "features": arguments.features, "threads": arguments.threads,
        "repeats": arguments.repeats, "cpu_repeats": arguments.cpu_repeats, "warm_up_runs": 1,
        "tolerance_mm": {"mean": TOLERANCE_MEAN_MM, "max": TOLERANCE_MAX_MM},
        "target": {"size": list(TARGET_SIZE), "seconds": TARGET_SECONDS, "gpus": list(TARGET_GPUS)},
        "gpu": gpu, "cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
        "versions": versions(), "cases": records,
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)

    def save():
        arguments.output.write_text(json.dumps(json_ready(report), indent=2) + "\n")

    # The GPU first (its numbers are the point, and a cut-short run keeps them), then the CPU.
    fields: dict[tuple[int, str], np.ndarray] = {}
    passes = ([("gpu", gpu_device, arguments.repeats)] if gpu_device is not None else []) \
        + [("cpu", cpu, arguments.cpu_repeats)]
    for key, device, repeats in passes:
        for index, case in enumerate(cases):
            records[index][key], field = measure(case, device, arguments.features, repeats, arguments.threads,
                                                 progress)
            if field is not None:
                fields[index, key] = field
            save()
    for index in range(len(cases)):
        if (index, "cpu") in fields and (index, "gpu") in fields:
            records[index]["cpu_gpu_difference"] = difference(fields[index, "cpu"], fields[index, "gpu"])
            records[index]["iterations_differ"] = \
                records[index]["cpu"]["iterations"] != records[index]["gpu"]["iterations"]
    report["complete"] = True
    report["load_average_end"] = os.getloadavg()
    save()

    print(f"\nSUITS end to end, CPU against GPU, features={arguments.features!r}, the library's default schedule")
    print(main_table(records, gpu))
    print("\nmedian times split by part (s); iterations run per scale; error: mean |u - u_true| over the image "
          "(BrainWeb: the head), initial |u_true|")
    print(split_table(records))
    for record in records:
        for line in remarks(record):
            print(line)
    print()
    if gpu["measured"]:
        print(f"GPU: {gpu['name']} ({gpu['memory_gib']:.0f} GiB), torch {torch.__version__}, CUDA {gpu['cuda']}, "
              f"cuDNN {gpu['cudnn']}; CUDA start-up (first CUDA call, excluded from every time): "
              f"{gpu['start_up_seconds']:.2f} s; TF32: cuDNN {gpu['cudnn_allow_tf32']}, "
              f"matmul {gpu['matmul_allow_tf32']} (torch defaults, not changed)")
    else:
        print(f"GPU NOT MEASURED: {gpu['reason']}; only the CPU part ran.")
    if not any(is_target(record) for record in records):
        print(f"target {'x'.join(map(str, TARGET_SIZE))} in at most {TARGET_SECONDS:g} s: not in --sizes, not measured")
    print(f"same field: mean |CPU - GPU| <= {TOLERANCE_MEAN_MM} mm and max <= {TOLERANCE_MAX_MM} mm over the image "
          "(displacement of the last timed run on each device)")
    runs = (f"{arguments.repeats} GPU / {arguments.cpu_repeats} CPU" if gpu["measured"]
            else f"{arguments.cpu_repeats} CPU")
    print(f"times: wall clock of the whole register() call, median of {runs} timed run(s) after 1 warm-up; "
          f"torch, SimpleITK and ITK threads "
          f"{arguments.threads} on a {os.cpu_count()}-CPU machine (the package runs torch on 1 thread below "
          f"{SINGLE_THREAD_VOXELS:,} voxels on the CPU: column 'CPU thr'); load average at the end "
          f"{os.getloadavg()[0]:.2f}")
    for note in notes:
        print(note)
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    print(f"reproduce: {command}")
    print(f"all numbers: {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
