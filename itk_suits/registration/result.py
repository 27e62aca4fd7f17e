"""The outcome of a registration, in the caller's library, and how it is saved."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch

from .._version import __version__
from ..core import BSplineGrid
from ..errors import GeometryError
from ..interop import images as image_io
from ..interop import transforms as transform_io
from .parameters import RegistrationParameters

__all__ = ["RegistrationResult", "compose"]

#: Files :meth:`RegistrationResult.save` writes.
SAVED_FILES = ("warped.nii.gz", "displacement.nii.gz", "transform.h5", "checkerboard.png", "parameters.json")


def compose(initial, deformable, kind: str):
    """``deformable`` alone, or followed by ``initial`` when there is one (fixed -> moving)."""
    return deformable if initial is None else transform_io.compose(initial, deformable, kind)


@dataclass
class RegistrationResult:
    """The outcome of a registration, in the caller's library.

    Attributes
    ----------
    warped : itk.Image, SimpleITK.Image or numpy.ndarray
        The moving image resampled onto the fixed grid with :attr:`transform`
        (linear interpolation); same origin, spacing and direction as the fixed image.
    transform : itk or SimpleITK transform
        Maps fixed physical points to moving physical points: a
        ``DisplacementFieldTransform``, or a ``CompositeTransform`` (initial
        transform after the displacement) when an initial transform was used.
        numpy callers get a SimpleITK transform.
    displacement_field : itk.Image, SimpleITK.Image or numpy.ndarray
        Physical displacement in millimetres on the fixed grid (vector image;
        numpy: ``(*shape, ndim)`` with components x, y[, z]) of the B-spline
        stage: :attr:`transform` maps ``p`` to ``initial(p + u(p))``, so with an
        initial transform or a linear stage the whole mapping's displacement is
        ``sitk.TransformToDisplacementField(result.sitk_transform, ...)``; computed from
        :attr:`control_grid` when first asked for (a large image's field is not
        held twice). :meth:`bspline_transform` gives the same mapping as an
        exact B-spline transform.
    log : list of dict
        Per scale: grid spacing, control points, working shape, iterations run,
        convergence, seconds (see :class:`~itk_suits.core.MultiScaleDescent`).
    seconds : float
        Wall time of the whole registration.
    device : str
        The torch device the descent ran on.
    kind : {"itk", "sitk", "numpy"}
        The library of the outputs (that of the fixed image; paths give ``"sitk"``).
    parameters : RegistrationParameters
        The validated parameters of the run.
    fixed_image, moving_image : SimpleITK.Image
        The float32 inputs as read (geometry included).
    moving_on_fixed : SimpleITK.Image
        The moving image resampled onto the fixed grid with the initial transform only.
    sitk_transform : SimpleITK.Transform
        :attr:`transform` as a SimpleITK transform, whatever :attr:`kind` is.
    index_displacement : numpy.ndarray
        The deformable part in voxels of the fixed grid: float64, shape
        ``(ndim, *array shape)``, components (x, y[, z]); in millimetres it is
        ``Direction @ diag(spacing) @ u``. Computed when first asked for.
    control_grid : numpy.ndarray
        The finest B-spline control grid: float64, shape ``(ndim, *control grid
        shape)``, components (x, y[, z]) in fixed voxels, grid in array order;
        control point ``k`` sits at voxel ``(k - 1) * control_spacing``.
    control_spacing : tuple of float
        Control-point spacing of :attr:`control_grid` in fixed voxels, array order.
    initial_transform : SimpleITK.Transform or None
        The initial alignment (fixed -> moving) composed into :attr:`transform`;
        with a linear stage, the initial transform composed with it.
    linear_transform : itk or SimpleITK transform or None
        The initial transform composed with the linear stage (its affine part
        alone, without the B-spline stage), in the caller's library; ``None``
        without a linear stage. :attr:`moving_on_fixed` is the moving image
        resampled with it.
    linear_log : list of dict or None
        The linear stage per stage and level: ``stage`` (``"rigid"``,
        ``"affine"``), ``factor``, ``shape``, ``iterations``, ``loss``, ``seconds``.
    """

    warped: Any
    transform: Any
    log: list
    seconds: float
    device: str
    kind: str
    parameters: RegistrationParameters = field(repr=False)
    fixed_image: sitk.Image = field(repr=False)
    moving_image: sitk.Image = field(repr=False)
    moving_on_fixed: sitk.Image = field(repr=False)
    sitk_transform: sitk.Transform = field(repr=False)
    control_grid: np.ndarray = field(repr=False)
    control_spacing: tuple = field(repr=False)
    initial_transform: sitk.Transform | None = field(repr=False)
    linear_transform: Any = field(default=None, repr=False)
    linear_log: list | None = field(default=None, repr=False)

    @functools.cached_property
    def index_displacement(self) -> np.ndarray:
        grid = BSplineGrid(tuple(reversed(self.fixed_image.GetSize())), self.control_spacing, dtype=torch.float64)
        return grid.dense(torch.from_numpy(self.control_grid)[None])[0].numpy()

    @functools.cached_property
    def displacement_field(self):
        field_image = transform_io.displacement_field_from_grid(self.control_grid, self.control_spacing,
                                                                self.fixed_image)
        return image_io.to_kind(field_image, self.kind)

    def warp(self, image, interpolator: str = "linear", default_value: float = 0.0, spacing=None):
        """Resample another image of the moving subject onto the fixed grid.

        Parameters
        ----------
        image : itk.Image, SimpleITK.Image, numpy.ndarray or path
            An image in the moving image's physical space (e.g. its label map).
        interpolator : {"linear", "nearest", "bspline"}
            ``"nearest"`` for label maps (the pixel type is kept).
        default_value : float
            Value outside the moving image.
        spacing : sequence of float, optional
            Spacing of a numpy ``image`` (x, y[, z] order).

        Returns
        -------
        Same library as ``image`` (numpy in, numpy out).
        """
        moving, kind = image_io.as_sitk_image(image, name="image", spacing=spacing)
        if moving.GetDimension() != self.fixed_image.GetDimension():
            raise GeometryError(
                f"image is {moving.GetDimension()}D but the registration is "
                f"{self.fixed_image.GetDimension()}D"
            )
        warped = image_io.resample(moving, self.fixed_image, self.sitk_transform, interpolator, default_value)
        return image_io.to_kind(warped, kind)

    def bspline_transform(self):
        """The same mapping as :attr:`transform` with an exact cubic ``BSplineTransform``.

        The finest control grid written as an ITK B-spline transform (a few
        hundred coefficients instead of a dense field), composed with the
        initial transform when there is one; in the caller's library.
        """
        bspline = transform_io.bspline_transform_from_index(self.control_grid, self.control_spacing, self.fixed_image)
        kind = "itk" if self.kind == "itk" else "sitk"
        if kind == "itk":
            bspline = transform_io.to_itk_transform(bspline)
        return compose(self.initial_transform, bspline, kind)

    def save(self, directory, overwrite: bool = False) -> dict:
        """Write the warped image, the displacement field, the transform, a checkerboard PNG and the parameters.

        Files: ``warped.nii.gz``, ``displacement.nii.gz`` (mm), ``transform.h5``
        (readable by ``itk.transformread`` and ``sitk.ReadTransform``),
        ``checkerboard.png`` and ``parameters.json`` (the parameters, the
        per-scale log, the device, the time and the itk-suits version). Existing
        files are never replaced unless ``overwrite`` is true.

        Returns
        -------
        dict
            Name to path of every file written.

        Raises
        ------
        FileExistsError
            One of the files exists and ``overwrite`` is false (nothing is written).
        """
        from ..visualization import save_registration_figure

        directory = os.fspath(directory)
        paths = {name: os.path.join(directory, name) for name in SAVED_FILES}
        existing = [p for p in paths.values() if os.path.exists(p)]
        if existing and not overwrite:
            raise FileExistsError(f"not overwriting {existing}; pass overwrite=True (CLI: --overwrite)")
        os.makedirs(directory, exist_ok=True)
        warped = image_io.resample(self.moving_image, self.fixed_image, self.sitk_transform)
        sitk.WriteImage(warped, paths["warped.nii.gz"])
        field_image = transform_io.displacement_field_from_grid(self.control_grid, self.control_spacing,
                                                                self.fixed_image)
        sitk.WriteImage(field_image, paths["displacement.nii.gz"])
        del field_image
        sitk.WriteTransform(self.sitk_transform, paths["transform.h5"])
        save_registration_figure(
            paths["checkerboard.png"],
            sitk.GetArrayFromImage(self.fixed_image),
            sitk.GetArrayFromImage(self.moving_on_fixed),
            sitk.GetArrayFromImage(warped),
            displacement=self.index_displacement,
            title="SUITS registration",
            overwrite=overwrite,
        )
        record = {
            "itk_suits_version": __version__,
            "parameters": self.parameters.to_dict(),
            "device": self.device,
            "seconds": self.seconds,
            "log": self.log,
            "linear_log": self.linear_log,
            "fixed": image_io.geometry_record(self.fixed_image),
            "moving": image_io.geometry_record(self.moving_image),
        }
        with open(paths["parameters.json"], "w", encoding="utf-8") as stream:
            json.dump(record, stream, indent=2)
            stream.write("\n")
        return paths
