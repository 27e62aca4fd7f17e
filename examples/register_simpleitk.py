"""SimpleITK in, SimpleITK out: register, resample labels, write and reread the transform.

Run: python examples/register_simpleitk.py
"""

import tempfile
from pathlib import Path

import SimpleITK as sitk

import itk_suits
from itk_suits.sample_data import demo_pair

fixed, moving = demo_pair()  # float32 T1 and PD slices, 1 mm
result = itk_suits.register(fixed, moving, initial_transform="moments", threads=1)

labels = sitk.Cast(moving > 100, sitk.sitkUInt8)  # any label map of the moving image
warped_labels = result.warp(labels, interpolator="nearest")
print("warped labels:", warped_labels.GetPixelIDTypeAsString(), warped_labels.GetSize())

path = Path(tempfile.mkdtemp(prefix="itk-suits-")) / "suits.h5"
sitk.WriteTransform(result.transform, str(path))
again = sitk.Resample(moving, fixed, sitk.ReadTransform(str(path)))
difference = sitk.GetArrayFromImage(sitk.Abs(again - result.warped)).max()
print(f"transform written to {path}; max difference after rereading: {difference:.2e}")
