"""Write the reference MIND-SSC images that the C++ tests compare with.

The C++ filter itk::MINDSSCImageFilter must equal the Python package's MIND-SSC within 1e-4.
This script computes the Python side with ``itk_suits.extract_features(..., "mind")`` on

- the bundled BrainWeb T1 slice (``itk_suits/sample_data/brainweb_t1.png``, 181 x 217), and
- a crop of a real 3D MR volume (``test/data/sct_t2_crop.nrrd``, see ``test/data/README.md``),
  which ``--crop-from`` writes from the spinal cord toolbox's T2 image,

and writes them as compressed float32 NRRD vector images to ``test/cxx/data/``. Run it from the
repository root after a change to the MIND-SSC definition and commit the new files:

    python test/cxx/make_reference.py [--crop-from .../sct_testing_data/t2/t2.nii.gz]
"""

import argparse
from pathlib import Path

import SimpleITK as sitk

from itk_suits import extract_features

ROOT = Path(__file__).resolve().parents[2]
SLICE = ROOT / "itk_suits" / "sample_data" / "brainweb_t1.png"
VOLUME = ROOT / "test" / "data" / "sct_t2_crop.nrrd"
REFERENCES = Path(__file__).resolve().parent / "data"
# Index and size (x, y, z) of the crop: about 20 000 voxels around the spinal cord.
CROP_INDEX = (15, 12, 14)
CROP_SIZE = (30, 28, 24)


def write_crop(source):
    """Crop the 3D test volume from ``source`` (keeps pixel type, origin, spacing, direction)."""
    volume = sitk.RegionOfInterest(sitk.ReadImage(str(source)), CROP_SIZE, CROP_INDEX)
    sitk.WriteImage(volume, str(VOLUME), useCompression=True)


def write_reference(image_path, name):
    """Python MIND-SSC of ``image_path`` (on the CPU) as ``test/cxx/data/<name>_mind.nrrd``."""
    features = extract_features(str(image_path), "mind", device="cpu")
    output = REFERENCES / f"{name}_mind.nrrd"
    sitk.WriteImage(sitk.Cast(features, sitk.sitkVectorFloat32), str(output), useCompression=True)
    print(f"{output.relative_to(ROOT)}: {features.GetSize()}, {features.GetNumberOfComponentsPerPixel()} channels")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop-from", type=Path, help="write test/data/sct_t2_crop.nrrd from this T2 volume first")
    args = parser.parse_args()
    if args.crop_from is not None:
        write_crop(args.crop_from)
    REFERENCES.mkdir(exist_ok=True)
    write_reference(SLICE, "brainweb_t1")
    write_reference(VOLUME, "sct_t2_crop")


if __name__ == "__main__":
    main()
