"""Write the reference data of the C++ registration test (run from the repository root).

The bundled BrainWeb PD slice is deformed by the demo's known smooth field
(``itk_suits.demo.known_deformation``, seed 0); the Python engine registers
the T1 slice to it with the default schedule and MIND-SSC features on one
thread, and its mean displacement error inside the head (fixed intensity
above 10 % of the maximum, as the demo scores it) is written next to the
images, so that ctest compares the C++ engine with it without Python.

Outputs in ``test/data/``:

- ``brainweb_pd_deformed.mha``: the moving image, float32, the T1 slice's grid.
- ``brainweb_true_field.mha``: the true fixed-to-moving displacement in mm,
  float32 vectors (x, y) on the same grid.
- ``brainweb_python_error.txt``: ``mean_error_mm <value>`` and ``p95_error_mm <value>``
  of the Python engine.

Usage::

    python test/cxx/make_registration_reference.py
"""

from __future__ import annotations

import pathlib

import numpy as np
import SimpleITK as sitk

from itk_suits.demo import known_deformation
from itk_suits.evaluation.metrics import displacement_error
from itk_suits.interop.transforms import displacement_field_from_index
from itk_suits.registration import register
from itk_suits.sample_data import demo_pair

OUTPUT = pathlib.Path(__file__).resolve().parents[1] / "data"
HEAD_THRESHOLD = 0.1


def main() -> None:
    fixed, pd = demo_pair()
    moving, true_index = known_deformation(pd, seed=0)
    true_field = displacement_field_from_index(true_index, fixed)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(moving, str(OUTPUT / "brainweb_pd_deformed.mha"), useCompression=True)
    sitk.WriteImage(sitk.Cast(true_field, sitk.sitkVectorFloat32), str(OUTPUT / "brainweb_true_field.mha"),
                    useCompression=True)

    result = register(fixed, moving, features="mind", metric="features", threads=1, progress=False)
    estimated = displacement_field_from_index(result.index_displacement, fixed)
    head = sitk.Cast(fixed > HEAD_THRESHOLD * float(np.max(sitk.GetArrayViewFromImage(fixed))), sitk.sitkUInt8)
    error = displacement_error(estimated, true_field, head)
    (OUTPUT / "brainweb_python_error.txt").write_text(
        f"mean_error_mm {error['mean']:.6f}\np95_error_mm {error['p95']:.6f}\n")
    print(f"Python engine: mean error {error['mean']:.4f} mm, p95 {error['p95']:.4f} mm, "
          f"iterations {[entry['iterations'] for entry in result.log]}")


if __name__ == "__main__":
    main()
