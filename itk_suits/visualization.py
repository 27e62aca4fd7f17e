"""Registration figures as PNG files: checkerboards, warped grids, contour overlays, comparisons.

Inputs are numpy arrays in array order (z, y, x) or (y, x); this module knows
nothing of ITK. A 3D array is shown as one slice along its first axis: the
middle one unless ``slice_index`` says otherwise. Intensities are windowed
per displayed slice to their 1st and 99th percentiles, so a few extreme
voxels do not wash out the display.

Figures are drawn on matplotlib's Agg canvas directly, without ``pyplot``:
no window ever opens and the caller's matplotlib backend is left untouched.
"""

import pathlib

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from itk_suits.errors import GeometryError, InputImageError, ParameterError

__all__ = [
    "checkerboard",
    "warped_grid_image",
    "save_registration_figure",
    "save_contour_overlay",
    "save_comparison_figure",
]

_PERCENTILES = (1.0, 99.0)
_PANEL_INCHES = 3.2
_DPI = 120
_CONTOUR_COLOURS = ("tab:red", "tab:cyan", "tab:orange", "tab:green", "tab:pink", "tab:olive")


def _image_slice(array, name, slice_index, reference=None):
    """Validate an input image and return its displayed (y, x) slice as float64.

    Parameters
    ----------
    array : array_like
        Image of shape (y, x) or (z, y, x).
    name : str
        Argument name used in error messages.
    slice_index : int or None
        Slice along the first axis for 3D input; None means the middle slice.
    reference : tuple of (tuple of int, str), optional
        (shape, name) of the image ``array`` must match in shape.
    """
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise InputImageError(
            f"{name}: expected a 2D (y, x) or 3D (z, y, x) array, got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise InputImageError(f"{name}: expected real numbers, got dtype {array.dtype}")
    if reference is not None and array.shape != reference[0]:
        raise GeometryError(
            f"{name}: shape {array.shape} differs from {reference[1]} shape {reference[0]}; "
            f"resample it onto the {reference[1]} grid first"
        )
    if array.ndim == 3:
        array = array[_slice_index(array.shape, slice_index)]
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise InputImageError(f"{name}: contains NaN or infinite values; replace them first")
    return array


def _slice_index(shape, slice_index):
    """Index of the displayed slice along the first axis of a 3D ``shape``."""
    if slice_index is None:
        return shape[0] // 2
    if not -shape[0] <= slice_index < shape[0]:
        raise ParameterError(
            f"slice_index: {slice_index} is outside the {shape[0]} slices of the first axis"
        )
    return slice_index


def _window(array):
    """Map the 1st-99th percentile range of ``array`` linearly to [0, 1], clipped.

    A constant array maps to zeros.
    """
    low, high = np.percentile(array, _PERCENTILES)
    if high <= low:
        return np.zeros_like(array, dtype=np.float64)
    return np.clip((array - low) / (high - low), 0.0, 1.0)


def checkerboard(a, b, tiles=8):
    """Interleave two images in a checkerboard of tiles.

    Both images are first windowed to [0, 1] (1st/99th percentiles each), so
    images of different modalities or intensity ranges are comparable.

    Parameters
    ----------
    a, b : numpy.ndarray
        Images of the same shape, any number of dimensions.
    tiles : int, optional
        Number of tiles along every axis (default 8). Where an axis length is
        not a multiple of ``tiles``, tile sizes differ by at most one pixel.

    Returns
    -------
    numpy.ndarray
        float64 array of the input shape with values in [0, 1]: windowed ``a``
        in tiles whose tile indices sum to an even number (including the tile
        at the origin), windowed ``b`` elsewhere.

    Raises
    ------
    GeometryError
        If ``a`` and ``b`` differ in shape.
    ParameterError
        If ``tiles`` is not a positive integer.

    Examples
    --------
    >>> a = np.zeros((4, 4)); a[::2] = 1.0
    >>> checkerboard(a, 1.0 - a, tiles=2)[0]
    array([1., 1., 0., 0.])
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise GeometryError(f"b: shape {b.shape} differs from a shape {a.shape}; give images on one grid")
    if isinstance(tiles, bool) or not isinstance(tiles, (int, np.integer)) or tiles < 1:
        raise ParameterError(f"tiles: expected a positive integer, got {tiles!r}")
    tile_index = sum(
        np.reshape((np.arange(n) * tiles) // n, [-1 if i == axis else 1 for i in range(a.ndim)])
        for axis, n in enumerate(a.shape)
    )
    return np.where(tile_index % 2 == 0, _window(a), _window(b))


def _grid_lines(coordinate, spacing_px):
    """Intensity of grid lines at multiples of ``spacing_px`` along one coordinate.

    A tent of half-width one pixel around each line: 1 on the line, 0 one pixel
    away or further. This is the linear interpolation of a one-pixel-wide line
    image, evaluated anywhere without running off its edges.
    """
    distance = np.abs(coordinate - spacing_px * np.round(coordinate / spacing_px))
    return np.clip(1.0 - distance, 0.0, 1.0)


def warped_grid_image(displacement, shape, spacing_px=8):
    """Render a regular grid deformed by a 2D displacement field.

    Fixed pixel ``p = (x, y)`` maps to moving point ``p + u(p)``. The image
    shows the regular grid of the moving space pulled back to the fixed
    space: pixel ``p`` is the (linearly interpolated) grid-line intensity at
    ``p + u(p)``. A zero field gives the regular grid.

    Parameters
    ----------
    displacement : numpy.ndarray
        Field of shape (2, H, W) in pixels, components (x, y): ``displacement[0]``
        moves along the last array axis, ``displacement[1]`` along the first.
    shape : tuple of int
        (H, W) of the rendered image; must equal ``displacement.shape[1:]``.
    spacing_px : int, optional
        Distance between grid lines in pixels (default 8, at least 2).

    Returns
    -------
    numpy.ndarray
        float64 array of shape (H, W), 1 on grid lines and 0 between them.

    Raises
    ------
    GeometryError
        If ``displacement`` is not (2, H, W) with (H, W) equal to ``shape``.
    InputImageError
        If ``displacement`` holds NaN or infinite values.
    ParameterError
        If ``spacing_px`` is not an integer of at least 2.

    Examples
    --------
    >>> grid = warped_grid_image(np.zeros((2, 9, 9)), (9, 9), spacing_px=4)
    >>> grid[1].tolist()
    [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    """
    displacement = np.asarray(displacement, dtype=np.float64)
    shape = tuple(int(n) for n in shape)
    if displacement.shape != (2,) + shape:
        raise GeometryError(
            f"displacement: expected shape {(2,) + shape} (components x, y in pixels, "
            f"then shape), got {displacement.shape}"
        )
    if not np.all(np.isfinite(displacement)):
        raise InputImageError("displacement: contains NaN or infinite values; replace them first")
    if isinstance(spacing_px, bool) or not isinstance(spacing_px, (int, np.integer)) or spacing_px < 2:
        raise ParameterError(f"spacing_px: expected an integer of at least 2, got {spacing_px!r}")
    y, x = np.indices(shape, dtype=np.float64)
    return np.maximum(
        _grid_lines(x + displacement[0], spacing_px),
        _grid_lines(y + displacement[1], spacing_px),
    )


def _output_path(path, overwrite):
    """Validate a PNG output path, refuse to overwrite, create its directory."""
    path = pathlib.Path(path)
    if path.suffix.lower() != ".png":
        raise ParameterError(f"path: figures are written as PNG; use a '.png' name, got {str(path)!r}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"path: {str(path)!r} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _new_figure(height_panels, width_panels, title):
    """An Agg-backed figure sized for a grid of image panels (fractions allowed)."""
    figure = Figure(
        figsize=(width_panels * _PANEL_INCHES, height_panels * _PANEL_INCHES + 0.4),
        dpi=_DPI,
        layout="constrained",
    )
    FigureCanvasAgg(figure)
    if title is not None:
        figure.suptitle(title)
    return figure


def _show(axes, image, title, cmap="gray"):
    """Draw a [0, 1] image on ``axes`` without ticks."""
    axes.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    axes.set_title(title, fontsize=10)
    axes.set_axis_off()


def _displacement_slice(displacement, shape, slice_index, spacing=None):
    """Displayed slice of a displacement field and its in-plane (x, y) part.

    Returns the (2, H, W) in-plane components and the (H, W) magnitude over
    all components: in voxels, or in mm when ``spacing`` (x, y[, z]) is given
    (exact for orthonormal image directions).
    """
    displacement = np.asarray(displacement, dtype=np.float64)
    ndim = len(shape)
    if displacement.shape != (ndim,) + shape:
        raise GeometryError(
            f"displacement: expected shape {(ndim,) + shape} (components "
            f"{'x, y, z' if ndim == 3 else 'x, y'} in voxels, then the fixed shape), "
            f"got {displacement.shape}"
        )
    if not np.all(np.isfinite(displacement)):
        raise InputImageError("displacement: contains NaN or infinite values; replace them first")
    if ndim == 3:
        displacement = displacement[:, _slice_index(shape, slice_index)]
    scale = np.ones(ndim) if spacing is None else np.asarray(spacing, dtype=np.float64)
    if scale.shape != (ndim,) or not np.all(scale > 0):
        raise ParameterError(f"spacing: expected {ndim} positive values (x, y[, z], mm), got {spacing!r}")
    scaled = displacement * scale.reshape((ndim,) + (1,) * (displacement.ndim - 1))
    return displacement[:2], np.sqrt(np.sum(scaled**2, axis=0))


def save_registration_figure(
    path,
    fixed,
    moving,
    warped,
    displacement=None,
    title=None,
    *,
    slice_index=None,
    overwrite=False,
):
    """Save a PNG summarising a registration result.

    Panels: fixed, moving, checkerboard of fixed and moving (before
    registration), checkerboard of fixed and warped moving (after) and, when
    ``displacement`` is given, the warped grid and the displacement magnitude
    with a colour bar.

    Parameters
    ----------
    path : str or os.PathLike
        Output file ending in ``.png``; missing parent directories are created.
    fixed : numpy.ndarray
        Fixed image, (y, x) or (z, y, x).
    moving : numpy.ndarray
        Moving image on the fixed grid (same shape as ``fixed``), e.g. resampled
        with the identity transform.
    warped : numpy.ndarray
        Moving image warped onto the fixed grid by the registration result.
    displacement : numpy.ndarray, optional
        Field of shape (ndim, *fixed.shape) in voxels of the fixed grid,
        components (x, y) or (x, y, z). For 3D, the grid panel deforms with
        the in-plane (x, y) components of the shown slice and the magnitude
        panel includes z.
    title : str, optional
        Figure title.
    slice_index : int, optional
        Slice along the first axis shown for 3D inputs (default: the middle one).
    overwrite : bool, optional
        Replace an existing file (default False).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    GeometryError
        If the images or the field do not match ``fixed`` in shape.
    InputImageError
        If an input is not a finite real 2D/3D array.
    ParameterError
        If ``path`` does not end in ``.png`` or ``slice_index`` is out of range.
    """
    path = _output_path(path, overwrite)
    fixed_shape = np.shape(fixed)
    fixed_2d = _image_slice(fixed, "fixed", slice_index)
    moving_2d = _image_slice(moving, "moving", slice_index, (fixed_shape, "fixed"))
    warped_2d = _image_slice(warped, "warped", slice_index, (fixed_shape, "fixed"))

    rows, columns = (1, 4) if displacement is None else (2, 3)
    figure = _new_figure(rows, columns, title)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    _show(axes[0], _window(fixed_2d), "fixed")
    _show(axes[1], _window(moving_2d), "moving")
    _show(axes[2], checkerboard(fixed_2d, moving_2d), "fixed / moving (before)")
    _show(axes[3], checkerboard(fixed_2d, warped_2d), "fixed / warped (after)")
    if displacement is not None:
        in_plane, magnitude = _displacement_slice(displacement, fixed_shape, slice_index)
        _show(axes[4], warped_grid_image(in_plane, fixed_2d.shape), "deformed grid", cmap="gray_r")
        shown = axes[5].imshow(magnitude, cmap="magma", interpolation="nearest")
        axes[5].set_title("displacement magnitude", fontsize=10)
        axes[5].set_axis_off()
        figure.colorbar(shown, ax=axes[5], fraction=0.046, pad=0.04, label="voxels")
    figure.savefig(path, format="png")
    return path


def save_contour_overlay(path, image, label_maps, overwrite=False, *, slice_index=None, title=None):
    """Save a PNG of an image in grey with the label boundaries of label maps.

    Each label map's boundaries (between every non-zero label and its
    surroundings) are drawn in one colour; the legend names the maps.

    Parameters
    ----------
    path : str or os.PathLike
        Output file ending in ``.png``; missing parent directories are created.
    image : numpy.ndarray
        Background image, (y, x) or (z, y, x).
    label_maps : dict of str to numpy.ndarray
        Legend entry -> integer label map of the image's shape, 0 = background,
        e.g. ``{"fixed labels": ..., "warped moving labels": ...}``.
    overwrite : bool, optional
        Replace an existing file (default False).
    slice_index : int, optional
        Slice along the first axis shown for 3D inputs (default: the middle one).
    title : str, optional
        Figure title.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    GeometryError
        If a label map differs from ``image`` in shape.
    InputImageError
        If an input is not a finite real 2D/3D array.
    ParameterError
        If ``label_maps`` is empty, or ``path`` or ``slice_index`` is invalid.
    """
    path = _output_path(path, overwrite)
    image_shape = np.shape(image)
    image_2d = _image_slice(image, "image", slice_index)
    if not label_maps:
        raise ParameterError("label_maps: give at least one {name: label map} entry")
    slices = {
        name: _image_slice(labels, f"label_maps[{name!r}]", slice_index, (image_shape, "image"))
        for name, labels in label_maps.items()
    }

    figure = _new_figure(1.1, 1, title)
    axes = figure.subplots()
    handles = _draw_contours(axes, image_2d, slices)
    axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=9, frameon=False)
    figure.savefig(path, format="png")
    return path


def _draw_contours(axes, image_2d, slices):
    """Draw ``image_2d`` in grey with the label boundaries of each (y, x) label map in ``slices``.

    Returns one legend handle per label map (its colour and name).
    """
    axes.imshow(_window(image_2d), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    axes.set_axis_off()
    handles = []
    for index, (name, labels) in enumerate(slices.items()):
        colour = _CONTOUR_COLOURS[index % len(_CONTOUR_COLOURS)]
        for value in np.unique(labels[labels != 0]):
            mask = (labels == value).astype(np.float64)
            if mask.all():
                continue
            axes.contour(mask, levels=[0.5], colors=[colour], linewidths=1.0)
        handles.append(Line2D([], [], color=colour, label=name))
    return handles


def save_comparison_figure(
    path,
    fixed,
    columns,
    *,
    fixed_labels=None,
    spacing=None,
    slice_index=None,
    title=None,
    overwrite=False,
):
    """Save a PNG comparing several registrations of one pair, one column each.

    Rows, top to bottom: the checkerboard of the fixed image and the column's
    warped moving image; the fixed image with the boundaries of the fixed
    labels and of the column's warped moving labels (when ``fixed_labels``
    is given); the deformed grid; the displacement magnitude, on one colour
    scale for the whole row. A column without a displacement (such as the
    moving image before registration) leaves its last two panels empty.

    Parameters
    ----------
    path : str or os.PathLike
        Output file ending in ``.png``; missing parent directories are created.
    fixed : numpy.ndarray
        Fixed image, (y, x) or (z, y, x).
    columns : dict of str to dict
        Column title -> ``{"warped": array, "labels": array or None,
        "displacement": array or None}``: the moving image and the moving
        label map resampled onto the fixed grid (shape of ``fixed``), and the
        displacement of shape (ndim, *fixed.shape) in voxels of the fixed grid,
        components (x, y) or (x, y, z) (see :func:`save_registration_figure`).
        ``"warped"`` is required; a missing ``"labels"`` or ``"displacement"`` means None.
    fixed_labels : numpy.ndarray, optional
        Integer label map of the fixed image (shape of ``fixed``, 0 = background).
    spacing : sequence of float, optional
        Voxel size (x, y[, z]) in mm: the magnitude row is then in mm (exact
        for orthonormal image directions), otherwise in voxels.
    slice_index : int, optional
        Slice along the first axis shown for 3D inputs (default: the middle one).
    title : str, optional
        Figure title.
    overwrite : bool, optional
        Replace an existing file (default False).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    GeometryError
        If an image, label map or field does not match ``fixed`` in shape.
    InputImageError
        If an input is not a finite real 2D/3D array.
    ParameterError
        If ``columns`` is empty, or ``path``, ``spacing`` or ``slice_index`` is invalid.
    """
    path = _output_path(path, overwrite)
    if not columns:
        raise ParameterError("columns: give at least one {title: {'warped': array, ...}} entry")
    fixed_shape = np.shape(fixed)
    fixed_2d = _image_slice(fixed, "fixed", slice_index)
    reference = (fixed_shape, "fixed")
    labels_2d = None
    if fixed_labels is not None:
        labels_2d = _image_slice(fixed_labels, "fixed_labels", slice_index, reference)
    panels = []
    for name, column in columns.items():
        warped = _image_slice(column.get("warped"), f"columns[{name!r}]['warped']", slice_index, reference)
        labels = column.get("labels")
        if labels is not None:
            labels = _image_slice(labels, f"columns[{name!r}]['labels']", slice_index, reference)
        displacement = column.get("displacement")
        if displacement is not None:
            displacement = _displacement_slice(displacement, fixed_shape, slice_index, spacing)
        panels.append((name, warped, labels, displacement))

    fixed_colour, warped_colour = (colour.replace("tab:", "") for colour in _CONTOUR_COLOURS[:2])
    label_row = f"labels: fixed {fixed_colour}, warped {warped_colour}"
    rows = ["fixed / warped", label_row, "deformed grid", "|displacement|"]
    if labels_2d is None:
        rows.remove(label_row)
    figure = _new_figure(len(rows), len(panels) + 0.35, title)  # the extra width holds the colour bar
    axes = figure.subplots(len(rows), len(panels), squeeze=False)
    largest = max([float(d[1].max()) for _, _, _, d in panels if d is not None] + [1e-6])
    shown = None
    for column, (name, warped, labels, displacement) in enumerate(panels):
        cells = dict(zip(rows, axes[:, column]))
        _show(cells["fixed / warped"], checkerboard(fixed_2d, warped), name)
        if label_row in cells:
            maps = {"fixed labels": labels_2d}
            if labels is not None:
                maps["warped moving labels"] = labels
            _draw_contours(cells[label_row], fixed_2d, maps)
        if displacement is None:
            cells["deformed grid"].set_axis_off()
            cells["|displacement|"].set_axis_off()
            continue
        in_plane, magnitude = displacement
        _show(cells["deformed grid"], warped_grid_image(in_plane, fixed_2d.shape), "", cmap="gray_r")
        shown = cells["|displacement|"].imshow(
            magnitude, cmap="magma", vmin=0.0, vmax=largest, interpolation="nearest"
        )
        cells["|displacement|"].set_axis_off()
    for row, name in enumerate(rows):
        axes[row, 0].text(-0.04, 0.5, name, transform=axes[row, 0].transAxes, rotation=90,
                          ha="right", va="center", fontsize=10)
    if shown is not None:
        unit = "voxels" if spacing is None else "mm"
        figure.colorbar(shown, ax=list(axes[-1]), fraction=0.05, pad=0.02, shrink=0.9, label=unit)
    figure.savefig(path, format="png")
    return path
