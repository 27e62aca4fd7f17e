"""A registration with a known answer: the bundled BrainWeb pair and a known smooth deformation.

:func:`known_deformation` deforms an image by a random smooth field whose
true fixed-to-moving displacement is returned with it, so a registration of
the original image to the deformed one can be scored in millimetres.
:func:`run_demo` does that for the bundled T1 (fixed) and PD (moving) slices:
multi-modal contrast, exact ground truth.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import SimpleITK as sitk
import torch

from itk_suits.core import invert_displacement, random_smooth_displacement, warp
from itk_suits.sample_data import demo_pair
from itk_suits.schedule import DEFAULT_ITERATIONS

__all__ = ["known_deformation", "run_demo"]

#: Voxels whose fixed intensity exceeds this fraction of the maximum are "inside the head".
_HEAD_THRESHOLD = 0.1


def known_deformation(
    image: sitk.Image,
    magnitude: float = 8.0,
    control_spacing: float = 40.0,
    seed: int = 0,
) -> tuple[sitk.Image, np.ndarray]:
    """Deform an image by a random smooth field and return the field.

    Parameters
    ----------
    image : SimpleITK.Image
        Scalar 2D or 3D image.
    magnitude : float
        Largest displacement length in voxels.
    control_spacing : float
        Control-point spacing of the random B-spline field in voxels (the
        larger, the smoother).
    seed : int
        Seed of the random field.

    Returns
    -------
    moving : SimpleITK.Image
        The deformed image, float32, with the geometry of ``image``.
    displacement : numpy.ndarray
        The true fixed-to-moving displacement ``u``, float64, shape
        ``(ndim, *array shape)``, components (x, y[, z]) in voxels of the
        image grid: voxel ``p`` of ``image`` corresponds to the point
        ``p + u(p)`` of ``moving``, so sampling ``moving`` at ``p + u(p)``
        gives back ``image`` (up to interpolation and the image border). In
        millimetres the field is ``Direction @ diag(spacing) @ u``.

    Examples
    --------
    >>> image = sitk.GaussianSource(sitk.sitkFloat32, [64, 48], sigma=[10, 8], mean=[32, 24])
    >>> moving, u = known_deformation(image, magnitude=3.0, control_spacing=24.0)
    >>> u.shape, moving.GetSize()
    ((2, 48, 64), (64, 48))
    """
    array = torch.from_numpy(sitk.GetArrayFromImage(image).astype(np.float32))[None, None]
    displacement = random_smooth_displacement(array.shape[2:], magnitude, control_spacing, seed)
    # moving(q) = image(q + v(q)) with v the inverse of u, hence moving(p + u(p)) = image(p).
    moved = warp(array, invert_displacement(displacement))
    moving = sitk.GetImageFromArray(moved[0, 0].numpy())
    moving.CopyInformation(image)
    return moving, displacement[0].numpy().astype(np.float64)


def run_demo(
    output_dir,
    *,
    iterations: int | Sequence[int] = DEFAULT_ITERATIONS,
    device: str = "auto",
    threads: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Register the bundled T1 slice to a deformed PD slice and score the result.

    The fixed image is the BrainWeb T1 slice; the moving image is the PD slice
    deformed by :func:`known_deformation` (seed 0), so the true displacement is
    known. The registration uses MIND-SSC features.

    Parameters
    ----------
    output_dir : str or os.PathLike
        Directory for the :meth:`RegistrationResult.save` files and ``demo.png``.
    iterations : int or sequence of int
        Maximum iterations per scale, or one number for all.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
    threads : int, optional
        torch CPU threads while registering.
    overwrite : bool
        Replace files of an earlier run in ``output_dir``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``error_before`` and ``error_after``: ``{"mean", "p95"}`` of the
        displacement error in mm inside the head (fixed intensity above 10 % of
        its maximum), before (``|u_true|``) and after (``|u_est - u_true|``)
        registration; ``folding_percent``: voxels with a Jacobian determinant
        <= 0 in the estimated field, in percent of the image; ``seconds``:
        registration wall time; ``device``; ``iterations``: iterations run per
        scale; ``files``: name to path of every file written, ``demo.png``
        included.

    Raises
    ------
    FileExistsError
        If an output file exists and ``overwrite`` is false (checked for
        ``demo.png`` before registering).
    """
    from itk_suits.evaluation.metrics import displacement_error, folding_percentage
    from itk_suits.interop.transforms import displacement_field_from_index
    from itk_suits.registration import register
    from itk_suits.visualization import save_registration_figure

    figure = os.path.join(os.fspath(output_dir), "demo.png")
    if os.path.exists(figure) and not overwrite:
        raise FileExistsError(f"not overwriting {figure}; pass overwrite=True (CLI: --overwrite)")

    fixed, pd = demo_pair()
    moving, true_index = known_deformation(pd, seed=0)
    result = register(
        fixed, moving, features="mind", iterations=iterations, device=device, threads=threads,
        progress=progress,
    )

    true_field = displacement_field_from_index(true_index, fixed)
    zero_field = displacement_field_from_index(np.zeros_like(true_index), fixed)
    estimated_field = displacement_field_from_index(result.index_displacement, fixed)
    fixed_array = sitk.GetArrayViewFromImage(fixed)
    head = sitk.Cast(fixed > _HEAD_THRESHOLD * float(fixed_array.max()), sitk.sitkUInt8)

    files = result.save(output_dir, overwrite=overwrite)
    files["demo.png"] = os.fspath(save_registration_figure(
        figure,
        fixed_array,
        sitk.GetArrayViewFromImage(moving),
        sitk.GetArrayViewFromImage(result.warped),
        displacement=result.index_displacement,
        title="itk-suits demo: BrainWeb T1 (fixed) / deformed PD (moving)",
        overwrite=overwrite,
    ))
    before = displacement_error(zero_field, true_field, head)
    after = displacement_error(estimated_field, true_field, head)
    return {
        "error_before": {"mean": before["mean"], "p95": before["p95"]},
        "error_after": {"mean": after["mean"], "p95": after["p95"]},
        "folding_percent": folding_percentage(estimated_field),
        "seconds": result.seconds,
        "device": result.device,
        "iterations": [entry["iterations"] for entry in result.log],
        "files": files,
    }
