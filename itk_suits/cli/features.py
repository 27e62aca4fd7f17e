"""``itk-suits features`` (a feature image) and ``itk-suits export`` (weights -> ONNX model folder)."""

from __future__ import annotations

import argparse

from .common import DEVICE_HELP, refuse_existing_file


def add(subparsers) -> None:
    parser = subparsers.add_parser(
        "features",
        help="write the feature image of an image file",
        description="Compute the features registration compares (MIND-SSC or a learned model) and write "
                    "them as a vector image with the input's geometry, one component per channel.",
    )
    parser.add_argument("image", metavar="IMAGE", help="image file (any format SimpleITK reads)")
    parser.add_argument("-o", "--output", required=True, metavar="FEATS",
                        help="output vector image file: .nii.gz, .nii, .nrrd or .mha (e.g. feats.nii.gz)")
    parser.add_argument("--model", default="mind",
                        help="'mind' (default), 'intensity', 'pretrained', a shipped model's name, a model folder, "
                             "or e.g. 'mind+DIR'")
    parser.add_argument("--modality", metavar="NAME",
                        help="the image's modality, e.g. 'ct': which network of a model with one network per "
                             "modality to use (needed for such a model)")
    parser.add_argument("--role", choices=("fixed", "moving"), default="fixed",
                        help="the image's role in a registration: which network of a model trained for fixed and "
                             "moving images without modality names to use (default: fixed)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.set_defaults(handler=run_features)

    parser = subparsers.add_parser(
        "export",
        help="export torch feature weights to an ONNX model folder",
        description="Turn feature-network weights (a model.pt, or a training checkpoint holding them "
                    "under 'model') into a model folder: fixed.onnx and moving.onnx (or shared.onnx), "
                    "model.json with checksums, and model.pt. The folder works as "
                    "register(..., features=MODEL_DIR).",
    )
    parser.add_argument("weights", metavar="CHECKPOINT_OR_MODEL_PT", help="torch weights file")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL_DIR", help="model folder to write")
    parser.add_argument("--name", help="model name in the card (default: the one stored with the weights, "
                                       "else the folder name)")
    parser.add_argument("--modalities", nargs=2, metavar=("FIXED", "MOVING"),
                        help="modalities of the images the fixed and the moving network were trained on, e.g. "
                             "'ct mr' (default: the ones stored with the weights)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing model files")
    parser.set_defaults(handler=run_export)


def run_features(arguments: argparse.Namespace) -> int:
    from itk_suits.interop.images import check_vector_image_path

    check_vector_image_path(arguments.output, "output")
    refuse_existing_file(arguments.output, arguments.overwrite)
    import SimpleITK as sitk

    from itk_suits.extract import extract_features

    features = extract_features(arguments.image, arguments.model, arguments.role, modality=arguments.modality,
                                device=arguments.device)
    sitk.WriteImage(features, arguments.output)
    print(f"wrote {arguments.output} ({features.GetNumberOfComponentsPerPixel()} channels, model {arguments.model})")
    return 0


def run_export(arguments: argparse.Namespace) -> int:
    from itk_suits.features.model import load_torch_weights, read_model_card
    from itk_suits.features.onnx import export_onnx

    pair, card_fields = load_torch_weights(arguments.weights)
    known = ("name", "description", "modalities", "training", "benchmark")
    fields = {key: card_fields[key] for key in known if key in card_fields}
    if arguments.name:
        fields["name"] = arguments.name
    if arguments.modalities:
        fields["modalities"] = arguments.modalities
    directory = export_onnx(pair, arguments.output, overwrite=arguments.overwrite, **fields)
    card = read_model_card(directory)
    networks = ("networks by role (fixed, moving)" if not card.modalities
                else f"networks for {', '.join(card.modalities)}")
    print(f"wrote {directory} ({card.ndim}D, {card.channels} channels, {networks})")
    print(f"onnxruntime vs torch: max abs difference {card.onnx_max_abs_difference:.2e}")
    return 0
