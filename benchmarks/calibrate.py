"""Calibrate the defaults of the SUITS descent on development data.

Sweeps the (coarse, finest) smoothness weights, then the early-stopping
tolerance, on the bundled BrainWeb T1/PD pair deformed by known smooth fields
with *development* seeds 1-4 (the benchmark, ``bench_registration.py``, uses
seeds 10-14 and never informs the defaults), and reports the mean and
95th-percentile displacement error inside the head, the percentage of folded
pixels (Jacobian determinant <= 0) and the median registration time.

Reproduce: ``python benchmarks/calibrate.py [--threads 1]``
"""

from __future__ import annotations

import argparse

import numpy as np
import SimpleITK as sitk
import torch

import itk_suits
from itk_suits.sample_data import demo_pair
from itk_suits.demo import known_deformation
from itk_suits.evaluation.metrics import folding_percentage

TOLERANCES = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3]
WEIGHTS = [(0.0, 0.0), (0.0125, 0.025), (0.05, 0.1), (0.1, 0.2), (0.2, 0.4), (0.5, 1.0), (1.0, 2.0), (2.0, 4.0)]
SEEDS = (1, 2, 3, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    fixed, pd = demo_pair()
    head = sitk.GetArrayFromImage(fixed) > 0.1 * sitk.GetArrayFromImage(fixed).max()
    cases = [known_deformation(pd, magnitude=8.0, control_spacing=40.0, seed=s) for s in SEEDS]
    print(f"threads={args.threads} torch={torch.__version__} seeds={SEEDS}")
    print(f"{'coarse':>7} {'finest':>7} {'tol':>5} {'mean mm':>8} {'p95 mm':>8} {'fold %':>7} {'time s':>7}")
    itk_suits.register(fixed, cases[0][0], threads=args.threads)  # warm-up
    for coarse, finest in WEIGHTS:
        _report(fixed, cases, head, args.threads, smoothness=(coarse, coarse, finest))
    for tolerance in TOLERANCES:
        _report(fixed, cases, head, args.threads, tolerance=tolerance)


def _report(fixed, cases, head, threads, **options) -> None:
    errors, p95s, folds, times = [], [], [], []
    for moving, truth in cases:
        result = itk_suits.register(fixed, moving, threads=threads, **options)
        error = np.linalg.norm(result.index_displacement - truth, axis=0)[head]
        errors.append(error.mean())
        p95s.append(np.percentile(error, 95))
        field = sitk.GetImageFromArray(np.moveaxis(result.index_displacement, 0, -1), isVector=True)
        folds.append(folding_percentage(field))
        times.append(result.seconds)
    parameters = itk_suits.RegistrationParameters(**options).validated()
    print(f"{parameters.smoothness[0]:7.4g} {parameters.smoothness[-1]:7.4g} {parameters.tolerance:5.2f} "
          f"{np.mean(errors):8.3f} {np.mean(p95s):8.3f} {np.mean(folds):7.2f} {np.median(times):7.3f}")

if __name__ == "__main__":
    main()
