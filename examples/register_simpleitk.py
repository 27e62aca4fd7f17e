"""SimpleITK in, SimpleITK out: correct a known deformation, warp a label map, write and reread the transform.

The fixed image is the bundled BrainWeb T1 slice; the moving image is the PD
slice deformed by a known smooth field (``itk_suits.demo.known_deformation``),
so the registration has something to correct. The example prints, before and
after registration, the mean displacement error inside the head (mm, against
the known field) and the Dice overlap of the head outline of the moving image
with that of the fixed image, then writes the transform, rereads it and checks
that ``sitk.Resample`` with it reproduces ``result.warped``.

Run: python examples/register_simpleitk.py [output_dir] [--overwrite]
(output_dir defaults to a new temporary folder; existing files are only
replaced with --overwrite). Takes a few seconds on one CPU core.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

import itk_suits
from itk_suits.sample_data import demo_pair
from itk_suits.demo import known_deformation
from itk_suits.evaluation import dice, displacement_error
from itk_suits.interop.transforms import displacement_field_from_index

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("output_dir", nargs="?", help="folder for the output files (default: a new temporary folder)")
parser.add_argument("--overwrite", action="store_true", help="replace files of an earlier run in output_dir")
args = parser.parse_args()
output = Path(args.output_dir or tempfile.mkdtemp(prefix="itk-suits-simpleitk-"))
files = [output / name for name in ("suits.h5", "warped.nii.gz", "warped_head.nii.gz")]
if not args.overwrite and any(path.exists() for path in files):
    raise SystemExit(f"not overwriting files in {output}; pass --overwrite or another folder")
output.mkdir(parents=True, exist_ok=True)

fixed, pd = demo_pair()  # float32 T1 and PD slices, 1 mm, aligned with each other
moving, truth = known_deformation(pd, magnitude=8.0, control_spacing=40.0, seed=6)

result = itk_suits.register(fixed, moving, threads=1)

# a label map of the moving image (its head outline), carried onto the fixed grid
def head(image):
    """The head outline: voxels above 10 % of the image maximum, as a uint8 label map."""
    return sitk.Cast(image > 0.1 * float(sitk.GetArrayViewFromImage(image).max()), sitk.sitkUInt8)


fixed_head, moving_head = head(fixed), head(moving)
warped_head = result.warp(moving_head, interpolator="nearest")
print("warped labels:", warped_head.GetPixelIDTypeAsString(), warped_head.GetSize())

# the known answer: mean displacement error inside the head, in mm
true_field = displacement_field_from_index(truth, fixed)
zero_field = displacement_field_from_index(np.zeros_like(truth), fixed)
error_before = displacement_error(zero_field, true_field, fixed_head)["mean"]
error_after = displacement_error(result.displacement_field, true_field, fixed_head)["mean"]
dice_before = dice(fixed_head, moving_head)[1]
dice_after = dice(fixed_head, warped_head)[1]
print(f"mean displacement error in the head: {error_before:.2f} mm before, {error_after:.2f} mm after")
print(f"Dice of the head outline:            {dice_before:.3f} before, {dice_after:.3f} after")

sitk.WriteTransform(result.transform, str(files[0]))
again = sitk.Resample(moving, fixed, sitk.ReadTransform(str(files[0])))
difference = sitk.GetArrayFromImage(sitk.Abs(again - result.warped)).max()
print(f"max difference after rereading the transform: {difference:.2e}")
sitk.WriteImage(result.warped, str(files[1]))
sitk.WriteImage(warped_head, str(files[2]))
print(f"{result.seconds:.2f} s registration; wrote {', '.join(path.name for path in files)} to {output}")

if not (error_after < 0.5 * error_before and dice_after > dice_before):
    raise SystemExit("registration did not correct the known deformation")
