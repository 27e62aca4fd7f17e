"""Across subjects: align the abdomen of one person to another's and score the organ overlap.

Two different people's abdominal MR (one axial T2-SPIR slice each, through the
kidneys, from the CHAOS challenge; see ``examples/data/README.md``) with their
liver and kidney labels. Different bodies differ in size, shape and position
of every organ, so the registration has to move organs, not only correct a
small distortion. The example starts from the images' centres of mass
(``initial_transform="moments"``), registers with the defaults, warps the
moving labels with nearest neighbour and prints the mean Dice of the organs
before and after; it saves a picture of the fixed image with the fixed
(solid) and the warped moving (dashed) organ outlines, before and after.

Run: python examples/register_inter_subject.py [output_dir] [--overwrite]
(output_dir defaults to a new temporary folder; existing files are only
replaced with --overwrite). Takes a few seconds on one CPU core.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

import itk_suits
from itk_suits.evaluation import dice
from itk_suits.visualization import save_comparison_figure

DATA = Path(__file__).resolve().parent / "data"
ORGANS = {1: "liver", 2: "right kidney", 3: "left kidney"}

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("output_dir", nargs="?", help="folder for the output files (default: a new temporary folder)")
parser.add_argument("--overwrite", action="store_true", help="replace files of an earlier run in output_dir")
args = parser.parse_args()
output = Path(args.output_dir or tempfile.mkdtemp(prefix="itk-suits-inter-subject-"))
names = ("warped.nii.gz", "displacement.nii.gz", "transform.h5", "checkerboard.png", "parameters.json",
         "warped_labels.nii.gz", "organs.png")
if not args.overwrite and any((output / name).exists() for name in names):
    raise SystemExit(f"not overwriting files in {output}; pass --overwrite or another folder")
output.mkdir(parents=True, exist_ok=True)


def read(name, pixel):
    return sitk.ReadImage(str(DATA / f"chaos_t2_{name}.nii.gz"), pixel)


fixed, moving = read("subject19_slice", sitk.sitkFloat32), read("subject20_slice", sitk.sitkFloat32)
fixed_labels, moving_labels = read("subject19_labels", sitk.sitkUInt8), read("subject20_labels", sitk.sitkUInt8)

result = itk_suits.register(fixed, moving, initial_transform="moments", threads=1)
start = sitk.Resample(moving_labels, fixed, result.initial_transform, sitk.sitkNearestNeighbor, 0)
warped_labels = result.warp(moving_labels, interpolator="nearest")


def mean_dice(labels):
    return float(np.mean([dice(fixed_labels, labels, ORGANS)[label] for label in ORGANS]))


before, after = mean_dice(start), mean_dice(warped_labels)
per_organ = dice(fixed_labels, warped_labels, ORGANS)
print(f"mean organ Dice (liver, kidneys): {before:.3f} after the centres of mass, {after:.3f} after "
      f"registering; " + ", ".join(f"{ORGANS[k]} {v:.3f}" for k, v in per_organ.items()))

result.save(output, overwrite=args.overwrite)
sitk.WriteImage(warped_labels, str(output / "warped_labels.nii.gz"))
start_image = sitk.Resample(moving, fixed, result.initial_transform, sitk.sitkLinear, 0.0)
save_comparison_figure(
    output / "organs.png", sitk.GetArrayFromImage(fixed),
    {f"centres of mass: Dice {before:.2f}": {"warped": sitk.GetArrayFromImage(start_image),
                                              "labels": sitk.GetArrayFromImage(start)},
     f"registered: Dice {after:.2f}": {"warped": sitk.GetArrayFromImage(result.warped),
                                       "labels": sitk.GetArrayFromImage(warped_labels),
                                       "displacement": result.index_displacement}},
    fixed_labels=sitk.GetArrayFromImage(fixed_labels), spacing=fixed.GetSpacing(),
    title="subject 20 registered to subject 19", overwrite=args.overwrite,
)
print(f"{result.seconds:.2f} s; wrote {', '.join(names)} to {output}")

if not after > before + 0.1:
    raise SystemExit("the registration did not improve the organ overlap across subjects")
