"""Small real images bundled with itk-suits for demos, docs and smoke tests.

The bundled pair is a T1-weighted and a proton-density (PD) weighted axial
brain slice simulated by BrainWeb, taken from the ITK example data (see
``README.md`` next to this file for provenance and licence). The two slices
are aligned with each other, so deforming one with a known field and
registering it back measures registration error on real multi-modal contrast.
"""

from importlib import resources
import pathlib

import SimpleITK as sitk

from itk_suits.errors import ParameterError

__all__ = ["data_path", "demo_pair"]

_T1 = "brainweb_t1.png"
_PD = "brainweb_pd.png"


def _bundled_files():
    """Names of the image files shipped in this package, sorted."""
    return sorted(
        entry.name
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".png")
    )


def _resource(name):
    """Traversable for a bundled file, or ParameterError naming the choices."""
    resource = resources.files(__name__).joinpath(name)
    if not resource.is_file():
        raise ParameterError(
            f"data_path: no bundled file named {name!r}; "
            f"choose one of {_bundled_files()}"
        )
    return resource


def data_path(name):
    """Return the file-system path of a bundled data file.

    Parameters
    ----------
    name : str
        File name inside ``itk_suits/sample_data``, e.g. ``"brainweb_t1.png"``.

    Returns
    -------
    pathlib.Path
        Path of the file inside the installed package.

    Raises
    ------
    ParameterError
        If no bundled file has that name (the message lists the files).

    Examples
    --------
    >>> data_path("brainweb_pd.png").name
    'brainweb_pd.png'
    """
    return pathlib.Path(str(_resource(name)))


def _read_float_slice(name):
    """Read a bundled 8-bit PNG as a float32 image with 1 mm spacing."""
    with resources.as_file(_resource(name)) as path:
        image = sitk.ReadImage(str(path), sitk.sitkFloat32)
    image.SetSpacing((1.0, 1.0))
    image.SetOrigin((0.0, 0.0))
    image.SetDirection((1.0, 0.0, 0.0, 1.0))
    return image


def demo_pair():
    """Return the bundled BrainWeb T1 / PD slice pair.

    Returns
    -------
    t1 : SimpleITK.Image
        T1-weighted slice, 2D, size (x, y) = (181, 217), float32 pixels with
        the original 8-bit values (0-255), spacing 1 mm, origin 0, identity
        direction.
    pd : SimpleITK.Image
        Proton-density-weighted slice on the same grid, aligned with ``t1``.

    Examples
    --------
    >>> t1, pd = demo_pair()
    >>> t1.GetSize(), pd.GetPixelIDTypeAsString()
    ((181, 217), '32-bit float')
    """
    return _read_float_slice(_T1), _read_float_slice(_PD)
