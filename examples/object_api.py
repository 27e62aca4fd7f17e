"""The ITK-style object API with iteration observers, on a 3D phantom from numpy.

Run: python examples/object_api.py
"""

import numpy as np

import itk_suits
from itk_suits.core import invert_displacement, random_smooth_displacement, warp

rng = np.random.default_rng(0)
z, y, x = np.mgrid[:40, :48, :48].astype(np.float32)
fixed = np.zeros((40, 48, 48), np.float32)
for _ in range(10):  # ellipsoids of random intensity
    c, r = rng.uniform(10, 38, 3), rng.uniform(4, 9, 3)
    fixed[((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2 < 1] = rng.uniform(0.2, 1)

import torch  # noqa: E402  (only to make the known deformation)

truth = random_smooth_displacement(fixed.shape, 3.0, control_spacing=24, seed=1)
moving = warp(torch.from_numpy(np.sin(3 * fixed) ** 2)[None, None], invert_displacement(truth))[0, 0].numpy()

method = itk_suits.SuitsRegistrationMethod.New(fixed, moving)
method.SetSpacing((1.0, 1.0, 2.0))  # x, y, z in mm
method.SetGridSpacings((12, 8, 6))
method.AddObserver(itk_suits.ScaleEvent, lambda entry: print(
    f"scale {entry['scale']}: spacing {entry['grid_spacing']} vox, {entry['iterations']} iterations, "
    f"{entry['seconds']:.2f} s"))
method.Update()

field_mm = method.GetDisplacementField()  # (z, y, x, 3) in mm
estimate = np.moveaxis(field_mm, -1, 0) / np.array([1.0, 1.0, 2.0])[:, None, None, None]
error = np.linalg.norm(estimate - truth[0].numpy(), axis=0)[4:-4, 4:-4, 4:-4].mean()
print(f"mean voxel error {error:.2f} (before {np.linalg.norm(truth[0].numpy(), axis=0)[4:-4, 4:-4, 4:-4].mean():.2f})")
