"""Do learned SUITS features carry over from the training pairs to unseen pairs?

A diagnostic of feature learning on synthetic phantoms (no data files are
read). Per seed:

- **Pairs.** An abdomen-like organ phantom (3 organs, ``--shape``) in a
  CT-like modality and a randomly deformed copy (largest displacement 3
  voxels) in an MR-like modality; every image of a modality shares one
  intensity table (``synthesize_modality(..., modality_seed=...)``), as scans
  of one data set do. Each pair has its own anatomy.
- **Training** (unrolled mode, one network shared by both images, grid
  spacings 12 and 6 voxels with ``--iterations`` each, ``--epochs``):
  ``fixed``: the same ``--pairs`` pairs every epoch; ``fresh``: new pairs
  every epoch (``FeatureTrainer`` with a function of the epoch), as many per
  epoch, so both see the same number of presentations.
- **Scored**: mean organ Dice after ``register(..., grid_spacings=(12, 6),
  iterations=60)`` on the first epoch's training pairs and on 6 held-back
  pairs (unseen anatomy and deformations), for no registration, MIND-SSC,
  the untrained network and each trained one.

Usage::

    python benchmarks/bench_generalisation.py                    # 3 seeds, 48x48, 10 epochs
    python benchmarks/bench_generalisation.py --seeds 0 1 --epochs 30 --shape 64 64
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # benchmark this checkout, installed or not

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
import torch  # noqa: E402

import itk_suits  # noqa: E402
from support import number, set_threads, table, versions  # noqa: E402
from itk_suits.core import Scale  # noqa: E402
from itk_suits.evaluation import dice  # noqa: E402
from itk_suits.features.cnn import FeaturePair  # noqa: E402
from itk_suits.training import (  # noqa: E402
    FeatureTrainer,
    TrainingPair,
    TrainingSettings,
    SyntheticPair,
    signed_distance_maps,
    synthetic_pair,
)

DEFAULT_OUTPUT = REPOSITORY / "benchmarks" / "results" / "generalisation.json"
ORGANS = (1, 2, 3)
#: Intensity-table seeds of the CT-like (fixed) and MR-like (moving) modality.
TABLES = {"fixed": 11, "moving": 22}
HELD_BACK = 6
GRID_SPACINGS = (12, 6)


def phantom_pair(seed: int, shape) -> SyntheticPair:
    """Fixed and moving images and organ labels of one pair (numpy arrays)."""
    return synthetic_pair(shape, seed=seed, organs=len(ORGANS), magnitude=3.0, control_spacing=16,
                          modality_seeds=(TABLES["fixed"], TABLES["moving"]))


def training_pair(pair: SyntheticPair) -> TrainingPair:
    def image(array):
        return torch.from_numpy(array)[None, None]

    def sdm(labels):
        return torch.from_numpy(signed_distance_maps(labels, list(ORGANS)))[None]

    return TrainingPair(image(pair.fixed), image(pair.moving), sdm(pair.fixed_labels),
                        sdm(pair.moving_labels))


def organ_dice(features, pairs: list[SyntheticPair]) -> float:
    """Mean organ Dice after registering each pair with ``features`` (None: no registration)."""
    scores = []
    for pair in pairs:
        warped = pair.moving_labels
        if features is not None:
            result = itk_suits.register(pair.fixed, pair.moving, features=features,
                                        grid_spacings=GRID_SPACINGS, iterations=60)
            warped = result.warp(pair.moving_labels, interpolator="nearest")
        overlap = dice(*(sitk.GetImageFromArray(np.asarray(a, np.uint8)) for a in (pair.fixed_labels, warped)),
                       labels=ORGANS)
        scores.append(float(np.nanmean(list(overlap.values()))))
    return float(np.mean(scores))


def benchmark_seed(seed: int, arguments, progress) -> dict:
    shape = tuple(arguments.shape)

    def pairs_of_epoch(epoch: int) -> list[SyntheticPair]:
        return [phantom_pair(seed * 100_000 + epoch * 1_000 + 10 * k, shape) for k in range(arguments.pairs)]

    training = pairs_of_epoch(0)
    held_back = [phantom_pair(90_000_000 + seed * 1_000 + 10 * k, shape) for k in range(HELD_BACK)]
    settings = TrainingSettings(mode="unrolled", epochs=arguments.epochs, seed=seed,
                                scales=tuple(Scale(s, arguments.iterations, w) for s, w in zip(GRID_SPACINGS, (0.2, 0.4))))
    torch.manual_seed(seed)
    untrained = FeaturePair(2, shared=True)
    row = {"seed": seed}
    for name, features in (("none", None), ("MIND", "mind"), ("untrained", untrained)):
        row[name] = {"train": organ_dice(features, training), "held_back": organ_dice(features, held_back)}
    sources = {"fixed": [training_pair(p) for p in training],
               "fresh": lambda epoch: [training_pair(p) for p in pairs_of_epoch(epoch)]}
    for name in arguments.training:
        pairs = sources[name]
        progress(f"seed {seed}: training on {name} pairs")
        networks = copy.deepcopy(untrained)
        start = time.perf_counter()
        FeatureTrainer(networks, pairs, settings).train()
        row[f"trained, {name} pairs"] = {"train": organ_dice(networks, training),
                                          "held_back": organ_dice(networks, held_back),
                                          "training_seconds": time.perf_counter() - start}
    return row


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shape", type=int, nargs=2, default=(48, 48))
    parser.add_argument("--pairs", type=int, default=8, help="training pairs per epoch (default 8)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=40, help="grid iterations per training scale (default 40)")
    parser.add_argument("--training", nargs="+", choices=("fixed", "fresh"), default=["fixed", "fresh"],
                        help="which training pairs to compare (default both)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    arguments = parser.parse_args(argv)
    if arguments.output.exists() and not arguments.overwrite:
        parser.error(f"{arguments.output} exists; pass --overwrite to replace it or choose another --output")
    return arguments


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    command = "python " + shlex.join(sys.argv if argv is None else [sys.argv[0], *argv])
    set_threads(arguments.threads)
    started = time.perf_counter()

    def progress(message):
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    rows = [benchmark_seed(seed, arguments, progress) for seed in arguments.seeds]
    methods = [key for key in rows[0] if key != "seed"]
    lines = [[str(row["seed"]), name, number(row[name]["train"], 3), number(row[name]["held_back"], 3)]
             for row in rows for name in methods]
    lines += [["mean", name, number(np.mean([row[name]["train"] for row in rows]), 3),
               number(np.mean([row[name]["held_back"] for row in rows]), 3)] for name in methods]
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps({"command": command, "threads": arguments.threads,
                                            "versions": versions(), "seeds": rows}, indent=2) + "\n")
    print(f"organ Dice on the training pairs and on {HELD_BACK} held-back pairs per seed "
          f"({arguments.pairs} pairs per epoch, {arguments.epochs} epochs, {tuple(arguments.shape)})")
    print(table(["seed", "features", "Dice train pairs", "Dice held-back"], lines))
    print(f"threads: {arguments.threads}; versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"reproduce: {command}")


if __name__ == "__main__":
    main()
