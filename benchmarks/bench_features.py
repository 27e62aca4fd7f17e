"""Benchmark learned SUITS features against MIND and itk-elastix on synthetic abdomen-like phantoms.

The paper's experiment (inter-subject multi-modal registration, features
learned from 7 subjects per modality) on synthetic data, repeated for several
seeds:

Data (per seed ``s``)
---------------------
- 10 subjects of a *fixed* modality ("CT-like") and 10 of a *moving* modality
  ("MR-like"), 20 different subjects, so every pair is an inter-subject pair.
  By default (``--anatomy population``) each seed draws one organ layout
  (:func:`itk_suits.training.organ_phantom`: 6 organ labels in a body outline
  on a dark background) and every subject is a random smooth deformation of
  it (largest displacement 8 % of the image side, control spacing 30 %), as
  organs of different people differ in position and shape but correspond.
  ``--anatomy independent`` gives every subject its own ``organ_phantom``:
  organs at unrelated places, nothing a registration could recover.
- Each modality has one intensity table per seed shared by its subjects
  (:func:`itk_suits.training.synthesize_modality` with ``modality_seed``, a
  small per-subject jitter): CT-like images have no bias field and more noise,
  MR-like images a smooth bias field and less noise. Body and background get
  intensities too but are not scored.
- Subjects 0-6 of each modality train (7 x 7 = 49 unpaired training pairs,
  the moving image already on the fixed grid: the same grid here);
  subjects 7-9 test (3 x 3 = 9 test pairs, never seen in training).

Methods on the test pairs
-------------------------
initial (identity), itk-elastix (default affine + B-spline maps,
``run_elastix(threads=T)``), SUITS-MIND (``register(features="mind")``),
SUITS with features learned by Algorithm 1 and by the unrolled mode (each
trained on the 49 pairs with :func:`itk_suits.training.train_on_pairs`, its
defaults except ``--iterations`` grid iterations per training scale and
``--epochs``; run through the exported ONNX model folder as a user would),
and MIND + each learned model (channels concatenated); when a 2D model ships
in ``itk_suits/models/``, SUITS with it (``features="pretrained"``, trained
on other data by ``benchmarks/train_pretrained.py``) and MIND + it. Every
SUITS run uses ``register``'s default schedule; nothing is tuned here.

Reported: Dice per organ label (moving labels resampled through the
transform, nearest neighbour, against the fixed labels) and its mean over the
labels present, folding (% of voxels with a Jacobian determinant <= 0), wall
time per registration (``T`` threads for every method; one untimed warm-up of
MIND and elastix first), training time per mode, and each model's collapse
ratio (mean over the updates of the last training scale of the feature loss
divided by the loss of constant features: at or above 1 the features learned
nothing). Means over the test pairs per seed, then over the seeds.

Usage::

    python benchmarks/bench_features.py                       # 3 seeds, 128x128
    python benchmarks/bench_features.py --quick               # smoke check (about a minute)
    python benchmarks/bench_features.py --seeds 0 1 2 --shape 96 96 --iterations 40 --output /tmp/f.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # benchmark this checkout, installed or not

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

import itk_suits  # noqa: E402
from support import number, set_threads, table, versions  # noqa: E402
from itk_suits.evaluation import dice, folding_percentage, run_elastix  # noqa: E402
from itk_suits.features.model import shipped_model_dirs  # noqa: E402
from itk_suits.features.registry import (  # noqa: E402
    ConcatenatedFeatures,
    MindFeatures,
    PretrainedFeatures,
    get_feature_extractor,
)
from itk_suits.interop.images import resample  # noqa: E402
from itk_suits.training import (  # noqa: E402
    TrainingSettings,
    organ_phantom,
    synthesize_modality,
    train_on_pairs,
    training_pairs,
)
from itk_suits.training.phantoms import deform_labels  # noqa: E402

DEFAULT_OUTPUT = REPOSITORY / "benchmarks" / "results" / "features.json"

#: Organ labels per phantom (scored and supervised); the body outline is label ORGANS + 1.
ORGANS = 6
SUBJECTS = 10
TRAINING_SUBJECTS = 7
#: Subject variation of the "population" anatomy: largest displacement and control spacing,
#: as fractions of the smallest image side.
SUBJECT_MAGNITUDE = 0.08
SUBJECT_CONTROL = 0.3
#: Per modality: how its images are synthesised (the intensity table comes from modality_seed).
MODALITIES = {
    "fixed": {"name": "CT-like", "bias": 0.0, "noise": 0.05, "table_offset": 101},
    "moving": {"name": "MR-like", "bias": 0.3, "noise": 0.03, "table_offset": 202},
}
#: The modalities of the fixed and the moving image, as the trained models' cards name them.
MODALITY_NAMES = (MODALITIES["fixed"]["name"], MODALITIES["moving"]["name"])
#: Trained models: name -> train_on_pairs options (mode, and the step loss for Algorithm 1).
TRAINING_MODES = {
    "algorithm1": {"mode": "algorithm1"},
    "algorithm1-cosine": {"mode": "algorithm1", "settings": TrainingSettings(step_loss="cosine")},
    "unrolled": {"mode": "unrolled"},
}
MODE_NAMES = {"algorithm1": "Algorithm 1", "algorithm1-cosine": "Algorithm 1 (cosine)", "unrolled": "unrolled"}


# --- data ------------------------------------------------------------------------------------------


def _image(array: np.ndarray) -> sitk.Image:
    """numpy array as a SimpleITK image with 1 mm voxels, origin 0, identity direction."""
    return sitk.GetImageFromArray(array)


def subject_anatomies(seed: int, shape, anatomy: str) -> list[np.ndarray]:
    """Label maps (with the body label) of the 2 x 10 subjects, fixed modality first.

    ``"population"``: one organ layout per seed (:func:`organ_phantom`), each
    subject a random smooth deformation of it (largest displacement
    :data:`SUBJECT_MAGNITUDE` of the smallest image side, control spacing
    :data:`SUBJECT_CONTROL` of it), so organs differ in position and shape but
    correspond. ``"independent"``: every subject its own :func:`organ_phantom`
    (organs at unrelated places: no anatomical correspondence to recover).
    """
    seeds = np.random.SeedSequence([seed, 1]).generate_state(2 * SUBJECTS + 1)
    if anatomy == "independent":
        return [organ_phantom(shape, ORGANS, int(s)) for s in seeds[1:]]
    template = organ_phantom(shape, ORGANS, int(seeds[0]))
    side = min(shape)
    return [deform_labels(template, SUBJECT_MAGNITUDE * side, int(s), SUBJECT_CONTROL * side)[0] for s in seeds[1:]]


def make_subjects(seed: int, shape, anatomy: str) -> dict:
    """Images and organ label maps (body removed) of 10 subjects per modality."""
    anatomies = subject_anatomies(seed, shape, anatomy)
    image_seeds = np.random.SeedSequence([seed, 2]).generate_state(2 * SUBJECTS)
    subjects = {}
    for order, (role, modality) in enumerate(MODALITIES.items()):
        images, labels = [], []
        for k in range(SUBJECTS):
            index = order * SUBJECTS + k
            images.append(synthesize_modality(
                anatomies[index], int(image_seeds[index]), noise=modality["noise"], bias=modality["bias"],
                modality_seed=1000 * seed + modality["table_offset"],
            ))
            labels.append(np.where(anatomies[index] <= ORGANS, anatomies[index], 0).astype(np.uint8))
        subjects[role] = {"images": images, "labels": labels}
    return subjects


def test_pairs(subjects: dict) -> list[dict]:
    """Every held-out fixed subject with every held-out moving subject, as SimpleITK images."""
    pairs = []
    for i in range(TRAINING_SUBJECTS, SUBJECTS):
        for j in range(TRAINING_SUBJECTS, SUBJECTS):
            pairs.append({
                "name": f"fixed {i} <- moving {j}",
                "fixed": _image(subjects["fixed"]["images"][i]),
                "fixed_labels": _image(subjects["fixed"]["labels"][i]),
                "moving": _image(subjects["moving"]["images"][j]),
                "moving_labels": _image(subjects["moving"]["labels"][j]),
            })
    return pairs


# --- training --------------------------------------------------------------------------------------


def train_models(subjects: dict, arguments, seed: int, folder: Path, progress) -> dict:
    """Train one model per mode on the 7 x 7 training pairs; folder, card training entry and wall time."""
    n = TRAINING_SUBJECTS
    pairs = training_pairs(subjects["fixed"]["images"][:n], subjects["fixed"]["labels"][:n],
                           subjects["moving"]["images"][:n], subjects["moving"]["labels"][:n],
                           labels=list(range(1, ORGANS + 1)))
    scales = [(scale.grid_spacing, arguments.iterations, scale.smoothness) for scale in TrainingSettings().scales]
    models = {}
    for mode, options in TRAINING_MODES.items():
        progress(f"seed {seed}: training {MODE_NAMES[mode]} on {len(pairs)} pairs ({arguments.device})")
        start = time.perf_counter()
        out = train_on_pairs(
            pairs, folder / f"seed{seed}_{mode}", **options, scales=scales, epochs=arguments.epochs,
            device=arguments.device, seed=seed, progress=False,
            modalities=MODALITY_NAMES,
        )
        wall = time.perf_counter() - start
        training = json.loads((out / "model.json").read_text())["training"]
        models[mode] = {"folder": str(out), "wall_seconds": wall, "training": training}
        progress(f"    {training['updates']} updates in {training['seconds']:.1f} s, "
                 f"collapse ratio (last scale) {training['final_mean_ratio']:.3f}")
    return models


# --- methods and scoring ---------------------------------------------------------------------------


def suits_method(features, arguments):
    def run(fixed, moving):
        # the learned models name a network per modality; MIND-SSC and the shipped models accept any names
        result = itk_suits.register(fixed, moving, features=features, threads=arguments.threads,
                                    device=arguments.device, modalities=MODALITY_NAMES)
        return result.transform, result.displacement_field
    return run


def elastix_method(arguments):
    def run(fixed, moving):
        result = run_elastix(fixed, moving, threads=arguments.threads)
        return result.transform, result.displacement_field
    return run


def methods_for(models: dict, arguments) -> dict:
    """Method name -> callable(fixed, moving) -> (transform, displacement field in mm)."""
    mind = MindFeatures()
    methods = {"itk-elastix": elastix_method(arguments), "SUITS-MIND": suits_method(mind, arguments)}
    learned = {mode: get_feature_extractor(model["folder"]) for mode, model in models.items()}
    for mode, extractor in learned.items():
        methods[f"SUITS {MODE_NAMES[mode]}"] = suits_method(extractor, arguments)
    for mode, extractor in learned.items():
        methods[f"SUITS MIND+{MODE_NAMES[mode]}"] = suits_method(ConcatenatedFeatures([mind, extractor]), arguments)
    if shipped_model_dirs():  # the shipped 2D model, trained elsewhere (benchmarks/train_pretrained.py)
        pretrained = PretrainedFeatures()
        methods["SUITS pretrained"] = suits_method(pretrained, arguments)
        methods["SUITS MIND+pretrained"] = suits_method(ConcatenatedFeatures([mind, pretrained]), arguments)
    return methods


def label_scores(pair: dict, transform) -> dict:
    """Dice per organ label (NaN where a label is in neither map) and the mean over the others."""
    warped = resample(pair["moving_labels"], pair["fixed_labels"], transform, "nearest")
    per_label = dice(pair["fixed_labels"], warped, labels=range(1, ORGANS + 1))
    values = [v for v in per_label.values() if not np.isnan(v)]
    return {"dice": {str(k): v for k, v in per_label.items()}, "dice_mean": float(np.mean(values))}


def run_method(method, pair: dict) -> dict:
    start = time.perf_counter()
    transform, field = method(pair["fixed"], pair["moving"])
    seconds = time.perf_counter() - start
    return {**label_scores(pair, transform), "folding_percent": folding_percentage(field), "seconds": seconds}


def summarise(rows: list[dict]) -> dict:
    """Means over rows (test pairs or seeds) of Dice per label (NaN-skipping), mean Dice, folding, seconds."""
    if any("error" in row for row in rows):
        return {"error": next(row["error"] for row in rows if "error" in row)}
    summary = {"dice": {str(k): float(np.nanmean([row["dice"][str(k)] for row in rows]))
                        for k in range(1, ORGANS + 1)}}
    for key in ("dice_mean", "folding_percent", "seconds"):
        if key in rows[0]:
            summary[key] = float(np.mean([row[key] for row in rows]))
    return summary


def benchmark_seed(seed: int, arguments, folder: Path, progress, warm: dict) -> dict:
    subjects = make_subjects(seed, tuple(arguments.shape), arguments.anatomy)
    pairs = test_pairs(subjects)
    models = train_models(subjects, arguments, seed, folder, progress)
    methods = methods_for(models, arguments)
    if not warm:  # the first call of a method pays imports and initialisation
        for name in ("itk-elastix", "SUITS-MIND"):
            methods[name](pairs[0]["fixed"], pairs[0]["moving"])
        warm["done"] = True
    rows = {"initial": [label_scores(pair, None) for pair in pairs]}
    for name, method in methods.items():
        progress(f"seed {seed}: {name} on {len(pairs)} test pairs")
        rows[name] = []
        for pair in pairs:
            try:
                rows[name].append({"pair": pair["name"], **run_method(method, pair)})
            except Exception as error:  # a failing method is a result to report, not a crash
                rows[name].append({"pair": pair["name"], "error": f"{type(error).__name__}: {error}"})
                progress(f"    FAILED on {pair['name']}: {rows[name][-1]['error']}")
    return {"seed": seed, "models": models, "pairs": rows,
            "means": {name: summarise(method_rows) for name, method_rows in rows.items()}}


# --- report ----------------------------------------------------------------------------------------






def overall_means(results: list[dict]) -> dict:
    """Per method: the mean over seeds of the per-seed means, and the standard deviation of mean Dice."""
    means = {}
    for name in results[0]["means"]:
        per_seed = [result["means"][name] for result in results]
        means[name] = summarise(per_seed)
        if "error" not in means[name]:
            means[name]["dice_mean_std_over_seeds"] = float(np.std([row["dice_mean"] for row in per_seed]))
    return means


def results_table(means: dict) -> str:
    header = ["method"] + [f"Dice {k}" for k in range(1, ORGANS + 1)] + ["mean Dice", "sd seeds", "fold %", "t s"]
    lines = []
    for name, row in means.items():
        if "error" in row:
            lines.append([name, "FAILED: " + " ".join(row["error"].split())[:60]] + [""] * (len(header) - 2))
            continue
        lines.append([name] + [number(row["dice"][str(k)], 3) for k in range(1, ORGANS + 1)]
                     + [number(row["dice_mean"], 3), number(row.get("dice_mean_std_over_seeds"), 3),
                        number(row.get("folding_percent"), 3), number(row.get("seconds"), 2)])
    return table(header, lines)


def training_table(results: list[dict]) -> str:
    header = ["seed", "mode", "updates", "training s", "wall s (incl. export)", "collapse ratio (last scale)"]
    lines = []
    for result in results:
        for mode, model in result["models"].items():
            training = model["training"]
            lines.append([str(result["seed"]), MODE_NAMES[mode], str(training["updates"]),
                          number(training["seconds"], 1), number(model["wall_seconds"], 1),
                          number(training["final_mean_ratio"], 3)])
    return table(header, lines)






def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="data and training seeds (default 0 1 2)")
    parser.add_argument("--shape", type=int, nargs="+", default=[128, 128],
                        help="phantom size, array order, 2 or 3 numbers (default 128 128)")
    parser.add_argument("--anatomy", choices=("population", "independent"), default="population",
                        help="subjects as deformations of one organ layout per seed (default), or each its own "
                             "random phantom (no correspondence between subjects)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (passes over the schedule; default 1)")
    parser.add_argument("--iterations", type=int, default=30,
                        help="grid iterations per pair and training scale (default 30; the library's default is 300)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of training and every method (default 1)")
    parser.add_argument("--device", default="cpu", help="torch device of training and SUITS (default cpu)")
    parser.add_argument("--models", type=Path, default=None,
                        help="folder to keep the trained model folders in (default: a temporary folder)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"JSON file with every number (default {DEFAULT_OUTPUT.relative_to(REPOSITORY)})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    parser.add_argument("--quick", action="store_true",
                        help="smoke check: the first seed only, 64x64 phantoms, 10 training iterations per scale")
    arguments = parser.parse_args(argv)
    if len(arguments.shape) not in (2, 3) or min(arguments.shape) < 32:
        parser.error("--shape takes 2 or 3 sizes of at least 32 voxels")
    if min(arguments.threads, arguments.epochs, arguments.iterations) < 1:
        parser.error("--threads, --epochs and --iterations must be positive")
    if arguments.quick:
        arguments.seeds, arguments.shape, arguments.iterations = arguments.seeds[:1], [64, 64], 10
    if arguments.output.exists() and not arguments.overwrite:
        parser.error(f"{arguments.output} exists; pass --overwrite to replace it or choose another --output")
    if arguments.models is not None and arguments.models.exists() and any(arguments.models.iterdir()):
        parser.error(f"--models {arguments.models} is not empty; choose a new folder")
    return arguments


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    command = "python " + shlex.join(sys.argv if argv is None else [sys.argv[0], *argv])
    cpus = os.cpu_count()
    set_threads(arguments.threads)
    print(f"CPU count: {cpus}  threads: {arguments.threads}  device (training and SUITS): {arguments.device}  "
          f"load average: {os.getloadavg()[0]:.2f}")
    print(f"seeds {arguments.seeds}, shape {arguments.shape}, training: {arguments.iterations} grid iterations "
          f"per pair and scale, {arguments.epochs} epoch(s)")
    started = time.perf_counter()

    def progress(message):
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    warm: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_features_") as temporary:
        folder = arguments.models or Path(temporary)
        results = [benchmark_seed(seed, arguments, folder, progress, warm) for seed in arguments.seeds]
    means = overall_means(results)
    report = {
        "command": command, "cpu_count": cpus, "threads": arguments.threads, "device": arguments.device,
        "quick": arguments.quick, "seeds": arguments.seeds, "shape": arguments.shape, "organs": ORGANS,
        "anatomy": arguments.anatomy, "subject_variation": {"magnitude_fraction": SUBJECT_MAGNITUDE,
                                                            "control_spacing_fraction": SUBJECT_CONTROL},
        "subjects_per_modality": SUBJECTS, "training_subjects_per_modality": TRAINING_SUBJECTS,
        "modalities": MODALITIES, "training_iterations_per_scale": arguments.iterations, "epochs": arguments.epochs,
        "total_seconds": time.perf_counter() - started, "load_average_end": os.getloadavg(),
        "versions": versions(), "platform": platform.platform(), "seeds_results": results, "means": means,
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(report, indent=2) + "\n")

    print(f"\nSynthetic abdomen-like phantoms {'x'.join(map(str, arguments.shape))}, CT-like fixed <- MR-like "
          f"moving, inter-subject; {len(results) * 9} test pairs ({len(results)} seed(s) x 3 x 3 unseen subjects)")
    print("Dice per organ label and mean (mean over the test pairs, then over the seeds), folding, time per "
          "registration")
    print(results_table(means))
    print(f"\nTraining on {TRAINING_SUBJECTS} x {TRAINING_SUBJECTS} = 49 unpaired pairs per seed, on "
          f"{arguments.device} with {arguments.threads} thread(s); collapse ratio = feature loss / loss of "
          "constant features, mean over the last scale (>= 1: nothing learned)")
    print(training_table(results))
    print(f"\ntimes: wall clock per call, {arguments.threads} thread(s) per method on a {cpus}-CPU machine "
          f"(load average at the end {os.getloadavg()[0]:.2f}: compare within one run)")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    print(f"reproduce: {command}")
    print(f"all numbers: {arguments.output}")


if __name__ == "__main__":
    main()
