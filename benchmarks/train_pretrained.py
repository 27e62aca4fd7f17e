"""Train the feature models shipped in ``itk_suits/models/`` (modality-agnostic, synthetic data).

One command reproduces each shipped model::

    python benchmarks/train_pretrained.py --mode algorithm1 --overwrite                 # suits-synth-2d
    python benchmarks/train_pretrained.py --shape 40 40 40 --pairs 16 --epochs 4 --iterations 100 --overwrite  # suits-synth-3d

Data: the script reads ``../shared/data/`` relative to the repository root
(override with ``--data``; sources and licences in ``benchmarks/README.md``),
label maps only, no image intensities:

- ``voxelmorph_test_scan/test_scan.npz`` (``seg``: FreeSurfer aseg of one brain),
- ``niivue_freesurfer_subject/aparc.a2009s+aseg.mgz`` (FreeSurfer cortical
  parcellation and subcortical segmentation of another brain),
- ``nilearn_icbm152_2009a/``: the MNI ICBM152 grey- and white-matter maps
  (probability above 0.5) and four intensity bands of the T1 template outside
  them (scalp, skull, cerebrospinal fluid: head tissue the FreeSurfer maps lack).

Pairs: a quarter are abdomen-like organ phantoms, the others windows of the
maps (2D: of random slices through them) (:func:`itk_suits.training.synthetic_training_pairs`):
every structure gets a random intensity independently in the fixed and the
moving image (a new pair of 'modalities' per pair), with bias field, noise and
blur, and the moving anatomy is randomly deformed. Every epoch draws new
pairs (``--fixed-pairs`` keeps the first epoch's): features fitted to a few
fixed pairs registered those pairs far better but unseen pairs no better
(``benchmarks/README.md``). The network is shared by both modalities and
trained in the unrolled mode or (``--mode algorithm1``) with the paper's
Algorithm 1 and the cosine step loss; the shipped 2D model is the Algorithm 1
one (chosen over the unrolled one on the BrainWeb benchmark), the 3D model
the unrolled one (no 3D Algorithm 1 model was trained). None of the benchmark
images (BrainWeb slices, spinal-cord subject) is used in training.

The model folder gets ``model.json`` (the card, with this command), the ONNX
network, torch weights, the training log and loss plot; the checkpoint is
removed at the end. ``benchmarks/bench_registration.py --features ...`` and
``benchmarks/bench_features.py`` measure it.
"""

from __future__ import annotations

import argparse
import gzip
import shlex
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))  # train with this checkout, installed or not

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from support import set_threads  # noqa: E402
from itk_suits.training import TrainingSettings, synthetic_training_pairs, train_on_pairs  # noqa: E402
from itk_suits.training.checkpoint import CHECKPOINT_NAME  # noqa: E402

DEFAULT_DATA = REPOSITORY.parent / "shared" / "data"
MODELS = REPOSITORY / "itk_suits" / "models"
#: MGH voxel types: code -> big-endian numpy dtype.
MGH_TYPES = {0: ">u1", 1: ">i4", 3: ">f4", 4: ">i2"}
#: MGH header length in bytes before the voxels.
MGH_HEADER = 284


def read_mgz_labels(path: Path) -> np.ndarray:
    """Voxels of a FreeSurfer ``.mgz`` volume (single frame) as an int32 array, order (z, y, x)."""
    raw = gzip.decompress(path.read_bytes())
    width, height, depth, frames, code = np.frombuffer(raw, ">i4", count=5, offset=4)
    if frames != 1 or int(code) not in MGH_TYPES:
        raise ValueError(f"{path}: unsupported MGH volume ({frames} frames, voxel type {code})")
    count = int(width) * int(height) * int(depth)
    voxels = np.frombuffer(raw, MGH_TYPES[int(code)], count=count, offset=MGH_HEADER)
    return voxels.reshape(int(depth), int(height), int(width)).astype(np.int32)  # x varies fastest


def mni_head_labels(folder: Path) -> np.ndarray:
    """Grey matter 1, white matter 2, and T1 intensity bands 3-6 of the rest of the head (0 outside)."""
    def read(name):  # scaled to [0, 1] (the files store 0-255)
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / name))).astype(np.float32)
        return array / array.max()

    t1 = read("mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    grey = read("mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz") > 0.5
    white = read("mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz") > 0.5
    rest = (t1 > 0.05) & ~grey & ~white
    labels = np.zeros(t1.shape, np.int32)
    labels[rest] = 3 + np.searchsorted(np.quantile(t1[rest], [0.25, 0.5, 0.75]), t1[rest])
    labels[white] = 2
    labels[grey] = 1
    return labels


def anatomy_label_maps(data: Path) -> dict[str, np.ndarray]:
    """The real label maps the pairs are cut from, by name."""
    return {
        "voxelmorph aseg": np.load(data / "voxelmorph_test_scan" / "test_scan.npz")["seg"].astype(np.int32),
        "FreeSurfer aparc.a2009s+aseg": read_mgz_labels(data / "niivue_freesurfer_subject" / "aparc.a2009s+aseg.mgz"),
        "MNI152 tissue + head bands": mni_head_labels(data / "nilearn_icbm152_2009a"),
    }


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="default: <repo>/../shared/data")
    parser.add_argument("--out", type=Path, help="model folder (default itk_suits/models/suits-synth-<2d|3d>)")
    parser.add_argument("--pairs", type=int, default=40, help="training pairs per epoch (default 40)")
    parser.add_argument("--fixed-pairs", action="store_true", help="train every epoch on the first epoch's pairs")
    parser.add_argument("--shape", type=int, nargs="+", default=(128, 128),
                        help="pair size in voxels, 2 or 3 values (default 128 128)")
    parser.add_argument("--epochs", type=int, default=12, help="passes over the schedule (default 12)")
    parser.add_argument("--iterations", type=int, default=150, help="grid iterations per scale (default 150)")
    parser.add_argument("--mode", choices=("unrolled", "algorithm1"), default="unrolled",
                        help="training mode (default unrolled); algorithm1 uses the cosine step loss")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace a finished model in --out")
    arguments = parser.parse_args(argv)
    if len(arguments.shape) not in (2, 3):
        parser.error("--shape takes 2 or 3 sizes")
    arguments.out = arguments.out or MODELS / f"suits-synth-{len(arguments.shape)}d"
    return arguments


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    command = "python " + shlex.join(sys.argv if argv is None else [sys.argv[0], *argv])
    set_threads(arguments.threads)
    maps = anatomy_label_maps(arguments.data.resolve())
    phantoms = arguments.pairs // 4
    shape = tuple(arguments.shape)

    def pairs_of_epoch(epoch: int):
        seed = 2 * (arguments.seed * 100_000 + (0 if arguments.fixed_pairs else epoch))
        return (synthetic_training_pairs(arguments.pairs - phantoms, shape, seed=seed, label_maps=list(maps.values()))
                + synthetic_training_pairs(phantoms, shape, seed=seed + 1))

    data = {"anatomy": {"label maps (windows)": list(maps), "organ phantoms per epoch": phantoms},
            "pairs_per_epoch": arguments.pairs, "shape": list(shape), "source": "../shared/data (label maps only)"}
    out = train_on_pairs(
        pairs_of_epoch(0) if arguments.fixed_pairs else pairs_of_epoch, arguments.out, mode=arguments.mode,
        settings=TrainingSettings(step_loss="cosine" if arguments.mode == "algorithm1" else "mse"), shared=True, epochs=arguments.epochs, seed=arguments.seed,
        scales=[(spacing, arguments.iterations, smoothness) for spacing, smoothness in ((20, 0.2), (10, 0.2), (7, 0.4))],
        device=arguments.device, overwrite=arguments.overwrite, name=arguments.out.name,
        description=f"Modality-agnostic {len(shape)}D SUITS features (one network for both images), learned on synthetic "
                    "multi-modal pairs from brain label maps and abdomen-like phantoms",
        data=data, command=command,
    )
    (out / CHECKPOINT_NAME).unlink(missing_ok=True)
    print(f"model folder: {out}")


if __name__ == "__main__":
    main()
