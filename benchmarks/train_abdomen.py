"""Train the abdominal feature models: one network for MR, one for CT, anchored in organ labels.

One command reproduces each model (CPU, one thread; ``--device cuda`` where there is a GPU)::

    python benchmarks/train_abdomen.py --ndim 2 --overwrite     # itk_suits/models/suits-abdomen-2d (FeatureCNN)
    python benchmarks/train_abdomen.py --ndim 3 --overwrite     # itk_suits/models/suits-abdomen-3d (U-Net)

Objective: ``mode="sdm-regression"`` (:mod:`itk_suits.training.trainer`). The features of each image regress
tanh-scaled signed distance maps (SDMs, mm, :data:`SDM_ALPHA`) of its liver, right kidney, left kidney, spleen and the rest (the
background), merged round robin onto the 8 feature channels. Both networks map to the same function of the
anatomy, so at the right alignment the MR features equal the CT features and the SUITS step is the step of
the SDMs. The networks are the small U-Net (``architecture="unet"``).

Data: ``../shared/data/`` relative to the repository root (``--data``), development subjects only, the
validation subjects of ``bench_intersubject.py --split validation`` left out (:data:`MR_SUBJECTS`,
:data:`CT_SUBJECTS`); no held-out subject and no AMOS or ICRP 110 label map is read.

- MR: real CHAOS T2-SPIR images with their manual labels (CC BY-SA 4.0). Every sample gets a new random
  contrast (:func:`itk_suits.training.augment.augment_intensities`: gamma, monotonic, inverted and
  non-monotonic intensity curves, bias field, blur, Rician noise), so the network is not tied to T2-SPIR.
- CT: rendered from WORD label maps (GPL-3.0; :func:`itk_suits.training.rendering.render_ct`: Hounsfield
  values per tissue and contrast phase, texture, partial volume, noise, a synthetic body), each map
  rendered with several seeds, then cropped to its organs plus a random margin, as the benchmark's CT.

Samples: a window of ``--size`` voxels at an isotropic spacing drawn per sample (2D: in-plane, 1.25-2.5 mm, an
axial slice through the organs; 3D: 2.0-3.2 mm), centred on the labelled organs with a random shift, its
anterior-posterior axis flipped at random (arrays of both orientations occur), filled beyond the image with
its edge values (as ``register`` extends the moving image). Fresh samples every epoch. The model folder gets
the ONNX networks (``mr.onnx``, ``ct.onnx``), the card, torch weights, the training log and the loss plot;
``benchmarks/bench_intersubject.py --variant abdomen:features=\\"suits-abdomen-2d\\"`` measures it.
"""

from __future__ import annotations

import argparse
import functools
import shlex
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPOSITORY = BENCHMARKS.parent
sys.path.insert(0, str(REPOSITORY))  # train with this checkout, installed or not
sys.path.insert(0, str(BENCHMARKS))

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
import torch  # noqa: E402

from bench_intersubject import (CHAOS, CHAOS_SUBJECTS, CT_SPACING_MM, VALIDATION, WORD_SUBJECTS,  # noqa: E402
                                crop_physical, physical_box, render_around_organs)
from support import set_threads  # noqa: E402
from itk_suits.interop.images import resample  # noqa: E402
from itk_suits.schedule import Scale  # noqa: E402
from itk_suits.training import TrainingPair, TrainingSettings, signed_distance_maps, train_on_pairs  # noqa: E402
from itk_suits.training.augment import IntensityAugmentation, augment_intensities  # noqa: E402
from itk_suits.training.checkpoint import CHECKPOINT_NAME  # noqa: E402

DEFAULT_DATA = REPOSITORY.parent / "shared" / "data"
MODELS = REPOSITORY / "itk_suits" / "models"
#: Training subjects: the development subjects less the validation ones.
MR_SUBJECTS = tuple(s for s in CHAOS_SUBJECTS["dev"] if s not in VALIDATION["chaos"])
CT_SUBJECTS = tuple(f"word_{s}" for s in WORD_SUBJECTS["dev"] if f"word_{s}" not in VALIDATION["ct"])
#: The supervised labels, CHAOS numbering (liver, right kidney, left kidney, spleen).
ORGANS = (1, 2, 3, 4)
#: tanh scale of the SDMs (1/mm): 0.04 saturates about 50 mm from a boundary, so that the targets say which
#: organ a voxel lies in or near, which a network with a field of view of a few centimetres can tell; the
#: paper's 0.01 asks for distances up to 10 cm, which it cannot (loss ratio above 1 after 11 epochs).
SDM_ALPHA = 0.04
#: Renderings per CT label map (seeds 0 .. RENDERINGS - 1), cached over the run.
RENDERINGS = 4
#: Sample spacing ranges (mm) per dimension.
SPACINGS = {2: (1.25, 2.5), 3: (2.0, 3.2)}
#: Defaults per dimension: those of the shipped models (the 2D architecture chosen on the validation split over
#: the U-Nets, see itk_suits/models/README.md; in 3D only the U-Net was trained).
DEFAULTS = {2: {"architecture": "featurecnn", "epochs": 60, "pairs": 48, "presentations": 2, "batch": 4},
            3: {"architecture": "unet", "epochs": 25, "pairs": 16, "presentations": 1, "batch": 2}}
NETWORK_NAMES = {"featurecnn": "FeatureCNN", "unet": "U-Net", "unet4": "four-level U-Net"}
#: Default window sizes (array order) per dimension.
SIZES = {2: (160, 160), 3: (48, 96, 96)}
#: Random shift of the window centre from the organs' centre, mm per axis.
SHIFT_MM = 25.0
#: Margin (mm) the CT is cropped to beyond its organs, drawn per sample.
CT_CROP_MM = (15.0, 80.0)
LICENCES = {"CHAOS T2-SPIR MR and labels": "CC BY-SA 4.0", "WORD CT label maps": "GPL-3.0"}


class Anatomy:
    """Labelled MR and CT images and draws of random samples from them.

    Parameters
    ----------
    data : Path
        The shared data folder.
    ndim : {2, 3}
        Dimension of the samples.
    alpha : float
        SDM tanh scale, 1/mm.
    mr_subjects, ct_maps : sequence
        CHAOS subjects and WORD label maps (``"word_0014"``) to draw from (default: the training ones).
    mr_intensities : callable or None
        ``(array, rng) -> array`` applied to every MR window (default: :func:`augment_intensities`).
    """

    def __init__(self, data: Path, ndim: int, alpha: float = SDM_ALPHA, mr_subjects=None, ct_maps=None,
                 mr_intensities=augment_intensities):
        self.data, self.ndim, self.alpha = data, ndim, alpha
        self.ct_maps = tuple(CT_SUBJECTS if ct_maps is None else ct_maps)
        self.mr_intensities = mr_intensities
        self._ct_cache: dict = {}
        self.mr = [(sitk.ReadImage(str(data / CHAOS / f"image_{s}.nii.gz"), sitk.sitkFloat32),
                    sitk.ReadImage(str(data / CHAOS / f"label_{s}.nii.gz"), sitk.sitkUInt8))
                   for s in (MR_SUBJECTS if mr_subjects is None else mr_subjects)]

    def rendered_ct(self, name: str, seed: int) -> tuple[sitk.Image, sitk.Image]:
        """CT rendered from label map ``name`` with ``seed`` and its organs on the CT grid (cached)."""
        key = (name, seed)
        if key not in self._ct_cache:
            self._ct_cache[key] = render_around_organs(self.data, name, seed, CT_SPACING_MM)[:2]
        return self._ct_cache[key]

    def window(self, image: sitk.Image, labels: sitk.Image, size, rng: np.random.Generator):
        """A random window through the organs: image and labels resampled onto it (3D grids, 2D: one slice)."""
        spacing = rng.uniform(*SPACINGS[self.ndim])
        array = sitk.GetArrayViewFromImage(labels)
        index = np.argwhere(np.isin(array, ORGANS))
        centre = np.asarray(labels.TransformContinuousIndexToPhysicalPoint(
            [float(v) for v in index.mean(axis=0)[::-1]]))
        centre[:2] += rng.uniform(-SHIFT_MM, SHIFT_MM, 2)
        if self.ndim == 2:  # the axial slice of a random labelled voxel, at a slice centre of the image
            z_index = int(index[rng.integers(len(index)), 0])
            centre[2] = labels.TransformIndexToPhysicalPoint((0, 0, z_index))[2]
            extent = (size[1], size[0], 1)
        else:
            centre[2] += rng.uniform(-SHIFT_MM, SHIFT_MM)
            extent = (size[2], size[1], size[0])
        direction = np.diag([1.0, -1.0 if rng.random() < 0.5 else 1.0, 1.0])
        grid = sitk.Image([int(e) for e in extent], sitk.sitkFloat32)
        grid.SetSpacing([spacing] * 3)
        grid.SetDirection(direction.flatten().tolist())
        grid.SetOrigin((centre - direction @ ((np.asarray(extent) - 1) / 2 * spacing)).tolist())
        window = sitk.GetArrayFromImage(resample(image, grid, None, "linear", extrapolate=True))
        window_labels = sitk.GetArrayFromImage(resample(labels, grid, None, "nearest"))
        if self.ndim == 2:
            window, window_labels = window[0], window_labels[0]
        return window, window_labels, spacing

    def sample(self, modality: str, size, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One random sample: ``[1, 1, *size]`` image and ``[1, 5, *size]`` SDMs."""
        if modality == "mr":
            image, labels = self.mr[rng.integers(len(self.mr))]
            window, window_labels, spacing = self.window(image, labels, size, rng)
            if self.mr_intensities is not None:
                window = self.mr_intensities(window, rng)
        else:
            name = self.ct_maps[rng.integers(len(self.ct_maps))]
            ct, organs = self.rendered_ct(name, int(rng.integers(RENDERINGS)))
            low, high = physical_box(organs)
            margin = rng.uniform(*CT_CROP_MM)
            ct, organs = crop_physical(ct, low - margin, high + margin), crop_physical(organs, low - margin,
                                                                                       high + margin)
            window, window_labels, spacing = self.window(ct, organs, size, rng)
        sdm = signed_distance_maps(window_labels, list(ORGANS), spacing=(spacing,) * self.ndim, alpha=self.alpha)
        return (torch.from_numpy(np.ascontiguousarray(window, np.float32))[None, None],
                torch.from_numpy(np.ascontiguousarray(sdm, np.float32))[None])


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ndim", type=int, choices=(2, 3), required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="default: <repo>/../shared/data")
    parser.add_argument("--out", type=Path, help="model folder (default itk_suits/models/suits-abdomen-<2d|3d>)")
    parser.add_argument("--pairs", type=int, help="MR-CT sample pairs per epoch (default 48 in 2D, 16 in 3D)")
    parser.add_argument("--size", type=int, nargs="+", help="window size, array order (default 160 160; "
                                                             "48 96 96 in 3D)")
    parser.add_argument("--epochs", type=int, help="epochs (default 60 in 2D, 25 in 3D)")
    parser.add_argument("--presentations", type=int,
                        help="presentations of each pair per epoch (default 2 in 2D, 1 in 3D)")
    parser.add_argument("--batch", type=int, help="pairs per feature update (default 4 in 2D, 2 in 3D)")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="Adam learning rate (default 0.002)")
    parser.add_argument("--architecture", choices=("featurecnn", "unet", "unet4"),
                        help="the paper's 7-layer FeatureCNN (default in 2D), the U-Net of three levels (default "
                             "in 3D) or of four")
    parser.add_argument("--mr-inverted", type=float, default=IntensityAugmentation.inverted,
                        help="probability that an MR window's random intensity curve decreases, bright and dark "
                             f"tissues swapping as between T2 and T1 (default {IntensityAugmentation.inverted})")
    parser.add_argument("--alpha", type=float, default=SDM_ALPHA, help=f"SDM tanh scale in 1/mm (default {SDM_ALPHA})")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace a finished model in --out")
    arguments = parser.parse_args(argv)
    for name, value in DEFAULTS[arguments.ndim].items():
        if getattr(arguments, name) is None:
            setattr(arguments, name, value)
    arguments.size = tuple(arguments.size or SIZES[arguments.ndim])
    if len(arguments.size) != arguments.ndim:
        parser.error(f"--size takes {arguments.ndim} values with --ndim {arguments.ndim}")
    arguments.out = arguments.out or MODELS / f"suits-abdomen-{arguments.ndim}d"
    return arguments


def main(argv=None) -> None:
    arguments = parse_arguments(argv)
    command = "python " + shlex.join(["benchmarks/train_abdomen.py", *(sys.argv[1:] if argv is None else argv)])
    set_threads(arguments.threads)
    augmentation = IntensityAugmentation(inverted=arguments.mr_inverted)
    anatomy = Anatomy(arguments.data.resolve(), arguments.ndim, arguments.alpha,
                      mr_intensities=functools.partial(augment_intensities, settings=augmentation))

    def pairs_of_epoch(epoch: int) -> list[TrainingPair]:
        rng = np.random.default_rng([arguments.seed, epoch])
        pairs = []
        for _ in range(arguments.pairs):
            mr, mr_sdm = anatomy.sample("mr", arguments.size, rng)
            ct, ct_sdm = anatomy.sample("ct", arguments.size, rng)
            pairs.append(TrainingPair(fixed=mr, moving=ct, fixed_sdm=mr_sdm, moving_sdm=ct_sdm))
        return pairs

    # one scale; with step_weight 0 its grid only paces the presentations
    scale = Scale(grid_spacing=16, iterations=5 * arguments.presentations, smoothness=0.0)
    settings = TrainingSettings(batch_pairs=arguments.batch, feature_learning_rate=arguments.learning_rate,
                                subintervals=1)
    data = {"mr": {"dataset": "CHAOS T2-SPIR (shared/data/chaos_mr_t2)", "subjects": list(MR_SUBJECTS),
                   "augmentation": f"itk_suits.training.augment.{augmentation}"},
            "ct": {"dataset": "CT rendered from WORD label maps (shared/data/word_ct_labels)",
                   "label_maps": list(CT_SUBJECTS), "renderings_per_map": RENDERINGS,
                   "spacing_mm": CT_SPACING_MM},
            "licences": LICENCES, "labels": "liver, right kidney, left kidney, spleen (CHAOS numbering)",
            "window": list(arguments.size), "spacing_range_mm": list(SPACINGS[arguments.ndim]),
            "pairs_per_epoch": arguments.pairs, "sdm_alpha_per_mm": arguments.alpha,
            "left_out": "validation subjects (bench_intersubject.py VALIDATION), every held-out subject, "
                        "AMOS and ICRP 110"}
    out = train_on_pairs(
        pairs_of_epoch, arguments.out, mode="sdm-regression", architecture=arguments.architecture, shared=False,
        modalities=("mr", "ct"), settings=settings, epochs=arguments.epochs, seed=arguments.seed, scales=[scale],
        device=arguments.device, overwrite=arguments.overwrite, name=arguments.out.name,
        description=f"{arguments.ndim}D abdominal SUITS features, one {NETWORK_NAMES[arguments.architecture]} for MR "
                    "(any sequence) and one for CT, regressing signed distance maps of the liver, kidneys and spleen",
        data=data, command=command,
    )
    (out / CHECKPOINT_NAME).unlink(missing_ok=True)
    print(f"model folder: {out}")


if __name__ == "__main__":
    main()
