"""How well abdominal feature models describe the anatomy: their SDM loss ratio per modality and subject set.

The models of ``benchmarks/train_abdomen.py`` are trained so that the features of an MR or a CT image
regress the signed distance maps (SDMs) of its organs. This script draws windows as the training does (a
fixed seed, no augmentation) from the training subjects, from the validation subjects
(``bench_intersubject.py --split validation``) and, for MR, from the validation subjects through the T1-like
curve, runs each model's networks as registration runs them (ONNX, the card's intensity normalisation),
and prints the loss ratio to the best constant features: 0 is a perfect fit, 1 says nothing about the
organs. A model that fits its training subjects and not the validation ones has not generalised; one whose
CT ratio is much above its MR ratio (or the reverse) gives the two images of a CT -> MR pair features that
do not correspond.

    python benchmarks/sdm_fit_abdomen.py suits-abdomen-2d suits-abdomen-3d --samples 24

Reads ``../shared/data`` (CHAOS T2-SPIR, WORD label maps); prints a table and the command; ``--output``
writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS.parent))  # measure this checkout, installed or not
sys.path.insert(0, str(BENCHMARKS))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench_intersubject import VALIDATION, contrast_curve  # noqa: E402
from support import set_threads  # noqa: E402
from train_abdomen import CT_SUBJECTS, DEFAULT_DATA, MR_SUBJECTS, SIZES, Anatomy  # noqa: E402
from itk_suits.features.registry import get_feature_extractor  # noqa: E402
from itk_suits.training.losses import sdm_fit  # noqa: E402


def t1_like(window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The window through the benchmark's T1-like curve (``rng`` unused: the curve is fixed)."""
    return contrast_curve(window, "t1-like")


#: Sample sets: name -> (modality, Anatomy keyword arguments).
SETS = {
    "MR training": ("mr", {"mr_subjects": MR_SUBJECTS, "mr_intensities": None}),
    "MR validation": ("mr", {"mr_subjects": VALIDATION["chaos"], "mr_intensities": None}),
    "MR validation, T1-like": ("mr", {"mr_subjects": VALIDATION["chaos"], "mr_intensities": t1_like}),
    "CT training": ("ct", {"ct_maps": CT_SUBJECTS}),
    "CT validation": ("ct", {"ct_maps": VALIDATION["ct"]}),
}


def loss_ratio(extractor, modality: str, samples: list) -> float:
    """Mean squared SDM error of the features over the samples, divided by that of the best constant features."""
    error = constant = 0.0
    for image, sdm in samples:
        with torch.no_grad():
            loss, constant_loss = sdm_fit(extractor(image, role="fixed", modality=modality), sdm)
        error, constant = error + float(loss), constant + constant_loss
    return error / constant


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model names or folders (2D or 3D, with mr and ct networks)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="default: <repo>/../shared/data")
    parser.add_argument("--samples", type=int, default=24, help="windows per sample set (default 24)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, help="JSON file of the ratios")
    arguments = parser.parse_args(argv)
    command = "python " + shlex.join(["benchmarks/sdm_fit_abdomen.py", *(sys.argv[1:] if argv is None else argv)])
    set_threads(arguments.threads)
    extractors = {model: get_feature_extractor(model) for model in arguments.models}
    dimensions = {model: extractor.card.ndim for model, extractor in extractors.items()}
    ratios: dict = {model: {} for model in arguments.models}
    for ndim in sorted(set(dimensions.values())):
        for name, (modality, selection) in SETS.items():
            anatomy = Anatomy(arguments.data.resolve(), ndim, **selection)
            rng = np.random.default_rng([arguments.seed, ndim])
            samples = [anatomy.sample(modality, SIZES[ndim], rng) for _ in range(arguments.samples)]
            for model, extractor in extractors.items():
                if dimensions[model] == ndim:
                    ratios[model][name] = loss_ratio(extractor, modality, samples)
                    print(f"{model:24s} {name:24s} {ratios[model][name]:.3f}", flush=True)
    print(f"\nSDM loss ratio to constant features ({arguments.samples} windows per set; 0 perfect, 1 no anatomy)\n")
    print("| model | " + " | ".join(SETS) + " |")
    print("|---" * (len(SETS) + 1) + "|")
    for model in arguments.models:
        print(f"| {model} | " + " | ".join(f"{ratios[model][name]:.3f}" for name in SETS) + " |")
    print(f"\nreproduce: {command}")
    if arguments.output is not None:
        arguments.output.write_text(json.dumps({"command": command, "samples": arguments.samples,
                                                "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
