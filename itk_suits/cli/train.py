"""``itk-suits train``: learn feature networks from labelled images and write a model folder."""

from __future__ import annotations

import argparse

from .common import DEVICE_HELP, ITERATIONS_HELP, PROG, SLICE_AXES, SMOOTHNESS_HELP, SPACINGS_HELP, given


def _label_pair(text: str) -> tuple[int, int]:
    """``--label-mapping``: ``MOVING:FIXED``."""
    try:
        moving, fixed = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MOVING:FIXED label values, e.g. 6:1, got {text!r}") from None
    return moving, fixed


def add(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="learn SUITS features from labelled images of two modalities",
        description="Train the feature networks (the paper's Algorithm 1, or the unrolled mode) on every fixed "
                    "image paired with every moving image (unpaired subjects; label maps supervise through "
                    "signed distance maps) and write MODEL_DIR: fixed.onnx and moving.onnx (or shared.onnx), "
                    "model.json, model.pt, checkpoint.pt, training_log.csv and loss.png. An interrupted run "
                    "continues from its checkpoint when started again with the same options.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--fixed-dir", metavar="DIR", help="folder of fixed-modality images")
    source.add_argument("--dataset", metavar="JSON", help="Learn2Reg-style dataset.json: its 'training' images")
    source.add_argument("--synthetic", type=int, metavar="N",
                        help="N pairs of synthetic organ phantoms in random modalities (modality-agnostic)")
    parser.add_argument("--anatomy", nargs="+", metavar="LABEL_MAP",
                        help="with --synthetic: cut the anatomy from these label maps (e.g. FreeSurfer aseg; "
                             "2D pairs from 3D maps are random slices) instead of organ phantoms")
    parser.add_argument("--new-pairs", action="store_true",
                        help="with --synthetic: draw N new pairs every epoch (features that generalise instead "
                             "of fitting N pairs)")
    parser.add_argument("--fixed-label-dir", metavar="DIR", help="label maps of the fixed images (same file names)")
    parser.add_argument("--moving-dir", metavar="DIR", help="folder of moving-modality images (with --fixed-dir)")
    parser.add_argument("--moving-label-dir", metavar="DIR", help="label maps of the moving images")
    parser.add_argument("--modalities", nargs=2, metavar=("FIXED", "MOVING"),
                        help="the fixed and moving modality: with --dataset a name or index of the json's "
                             "(default: its registration_direction, else its first two), with --fixed-dir their "
                             "names (e.g. 'ct mr'); the model card names each network by them")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="model folder to write")
    parser.add_argument("--mode", choices=("algorithm1", "unrolled", "sdm-regression"),
                        help="step matching as in the paper (default), unrolled descent, or features regressing "
                             "signed distance maps of merged label groups (anatomy-anchored)")
    parser.add_argument("--step-loss", choices=("mse", "cosine"),
                        help="algorithm1's step mismatch: the paper's MSE (default) or 1 - cosine")
    parser.add_argument("--step-weight", type=float, metavar="WEIGHT",
                        help="with --mode sdm-regression: weight of the step loss as an auxiliary term (default: 0)")
    parser.add_argument("--architecture", choices=("featurecnn", "unet", "unet4"),
                        help="the paper's 7-layer FeatureCNN (default), a small U-Net (about 0.12 M parameters "
                             "in 2D, 0.35 M in 3D) or one of four levels (0.49 M, 1.46 M)")
    parser.add_argument("--shared", action="store_true", help="one network for both modalities")
    parser.add_argument("--spacing", type=float, metavar="MM", help="resample to this isotropic voxel size")
    parser.add_argument("--shape", nargs="+", type=int, metavar="N",
                        help="crop/pad every pair to this size (array order); with --synthetic the phantom size "
                             "(default 128 128)")
    parser.add_argument("--slice-axis", choices=tuple(SLICE_AXES),
                        help="train 2D networks on slices of 3D volumes normal to this physical axis")
    parser.add_argument("--slices", type=int, metavar="N", help="slices per pair with --slice-axis (default: 5)")
    parser.add_argument("--labels", nargs="+", type=int, metavar="LABEL",
                        help="labels to supervise (default: every label found)")
    parser.add_argument("--label-mapping", nargs="+", type=_label_pair, metavar="MOVING:FIXED",
                        help="moving label values in the fixed numbering, e.g. 6:1 7:2 (others are dropped)")
    parser.add_argument("--iterations", nargs="+", type=int, metavar="N",
                        help=ITERATIONS_HELP.replace("maximum iterations", "grid iterations per pair and scale"))
    parser.add_argument("--grid-spacings", nargs="+", type=float, metavar="VOXELS",
                        help=SPACINGS_HELP)
    parser.add_argument("--smoothness", nargs="+", type=float, metavar="WEIGHT",
                        help=SMOOTHNESS_HELP)
    parser.add_argument("--epochs", type=int, metavar="N", help="passes over the whole schedule (default: 1)")
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument("--seed", type=int, metavar="N", help="seed of every random choice (default: 0)")
    parser.add_argument("--checkpoint-every", type=int, metavar="N",
                        help="feature updates between checkpoints (default: 50; also after every scale)")
    parser.add_argument("--name", help="model name in the card (default: the folder name)")
    parser.add_argument("--no-resume", action="store_true",
                        help="refuse to continue an interrupted run in MODEL_DIR")
    parser.add_argument("--overwrite", action="store_true", help="train again into a folder with a model or checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _schedule(arguments: argparse.Namespace):
    """The schedule from --grid-spacings, --iterations and --smoothness (None: the library default)."""
    if arguments.grid_spacings is None and arguments.iterations is None and arguments.smoothness is None:
        return None
    from itk_suits.schedule import build_schedule

    return build_schedule(*(None if values is None else tuple(values) for values in
                            (arguments.grid_spacings, arguments.iterations, arguments.smoothness)))


def _train_command(arguments: argparse.Namespace) -> str:
    """The ``itk-suits train`` command line of ``arguments`` (the options given), for the model card."""
    import shlex

    words = [PROG, "train"]
    for dest, value in vars(arguments).items():
        if dest in ("command", "handler") or value is None or value is False:
            continue
        words.append("-o" if dest == "output" else "--" + dest.replace("_", "-"))
        if isinstance(value, list):
            words += [":".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in value]
        elif value is not True:
            words.append(str(value))
    return shlex.join(words)


def run(arguments: argparse.Namespace) -> int:
    import numpy as np

    from itk_suits.errors import ParameterError
    from itk_suits.interop import datasets
    from itk_suits.training.api import train_features, train_on_pairs
    from itk_suits.training.pairs import synthetic_training_pairs
    from itk_suits.training.trainer import TrainingSettings

    options = {
        "settings": TrainingSettings(**given(arguments, "step_loss", "step_weight")),
        "scales": _schedule(arguments), "resume": not arguments.no_resume, "overwrite": arguments.overwrite,
        "progress": not arguments.quiet, "shared": arguments.shared, "command": _train_command(arguments),
        **given(arguments, "mode", "architecture", "epochs", "device", "seed", "checkpoint_every", "name"),
    }
    data_options = given(arguments, "spacing", "slice_axis", "slices", "labels")
    if arguments.label_mapping is not None:
        data_options["label_mapping"] = dict(arguments.label_mapping)
    folder_options = ("fixed_label_dir", "moving_dir", "moving_label_dir")
    folder_flags = [f"--{name.replace('_', '-')}" for name in folder_options if getattr(arguments, name) is not None]
    if arguments.fixed_dir is None and folder_flags:
        raise ParameterError(f"{', '.join(folder_flags)} only go with --fixed-dir")
    if arguments.synthetic is not None and arguments.modalities is not None:
        raise ParameterError("--modalities does not go with --synthetic (its phantoms have random modalities)")
    synthetic_only = [name for name in ("anatomy", "new_pairs") if getattr(arguments, name)]
    if synthetic_only and arguments.synthetic is None:
        raise ParameterError(f"--{synthetic_only[0].replace('_', '-')} only goes with --synthetic")
    if arguments.synthetic is not None:
        if data_options:
            raise ParameterError("--synthetic makes its own phantoms (size --shape); it takes no "
                                 + ", ".join(f"--{k.replace('_', '-')}" for k in data_options))
        shape = tuple(arguments.shape or (128, 128))

        def pairs_of_epoch(epoch):
            seed = int(np.random.SeedSequence([arguments.seed or 0, epoch]).generate_state(1)[0])
            return synthetic_training_pairs(arguments.synthetic, shape, seed=seed,
                                                          label_maps=arguments.anatomy)

        directory = train_on_pairs(
            pairs_of_epoch if arguments.new_pairs else pairs_of_epoch(0), arguments.output,
            data={"synthetic_pairs": arguments.synthetic, "shape": list(shape),
                  "anatomy": arguments.anatomy or "organ phantoms (6 organs)"}, **options,
        )
    else:
        if arguments.dataset is not None:
            images = datasets.dataset_json_images(arguments.dataset, *(arguments.modalities or ()))
        else:
            for option in ("moving_dir", "fixed_label_dir", "moving_label_dir"):
                if getattr(arguments, option) is None:
                    raise ParameterError(f"--fixed-dir needs --{option.replace('_', '-')} (training needs the "
                                         "moving images and label maps of both modalities)")
            fixed, fixed_labels = datasets.folder_images(arguments.fixed_dir, arguments.fixed_label_dir)
            moving, moving_labels = datasets.folder_images(arguments.moving_dir, arguments.moving_label_dir)
            images = {"fixed_images": fixed, "fixed_labels": fixed_labels, "moving_images": moving,
                      "moving_labels": moving_labels, "modalities": arguments.modalities}
        if arguments.shape is not None:
            data_options["shape"] = arguments.shape
        directory = train_features(**images, out=arguments.output, **data_options, **options)
    from itk_suits.features.model import read_model_card

    training = read_model_card(directory).training
    print(f"wrote {directory}")
    print(f"trained on {training['device']}: {training['updates']} feature updates in {training['seconds']:.1f} s; "
          f"final mean loss ratio to constant features {training['final_mean_ratio']:.3f} (below 1: learned)")
    return 0
