"""Register the bundled BrainWeb PD slice onto the T1 slice with ITK images in and out.

Run: python examples/register_itk.py [output_dir]
"""

import sys
import tempfile
from pathlib import Path

import itk
import numpy as np

import itk_suits
from itk_suits.sample_data import data_path

output = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="itk-suits-"))
output.mkdir(parents=True, exist_ok=True)

fixed = itk.imread(str(data_path("brainweb_t1.png")), itk.F)
moving = itk.imread(str(data_path("brainweb_pd.png")), itk.F)

result = itk_suits.register(fixed, moving, features="mind", progress=True)

# the transform reproduces the warped image with ITK's own resampler
again = itk.resample_image_filter(moving, transform=result.transform, use_reference_image=True, reference_image=fixed)
print("max |warped - itk resample| =", float(np.abs(itk.array_from_image(again) - itk.array_from_image(result.warped)).max()))

itk.imwrite(result.warped, str(output / "warped.nii.gz"))
itk.transformwrite([result.transform], str(output / "suits.h5"))
print("per-scale log:", [(entry["grid_spacing"], entry["iterations"]) for entry in result.log])
print(f"{result.seconds:.2f} s on {result.device}; wrote {output}")
