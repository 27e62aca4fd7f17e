"""The ``itk-suits`` command line.

Subcommands::

    itk-suits register FIXED MOVING -o OUT [options]   register two image files
    itk-suits demo [-o DIR] [options]                  BrainWeb T1/PD demo with a known deformation

Each subcommand is added to the parser by an ``_add_<name>`` function that
sets its handler; a handler takes the parsed arguments and returns the exit
code. User errors (:class:`~itk_suits.errors.SuitsError`, and files that
exist or cannot be written) are reported as one ``itk-suits: error: ...``
line on stderr with exit code 2. The registration modules import torch, so
they are imported inside the handlers: ``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from itk_suits import __version__
from itk_suits.errors import SuitsError

__all__ = ["main", "build_parser"]

_PROG = "itk-suits"
_ERROR_EXIT = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``itk-suits`` with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="SUITS multi-modal deformable registration for ITK and SimpleITK images.",
    )
    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_register(subparsers)
    _add_demo(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``itk-suits`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, --version and usage errors
        return exit_request.code if isinstance(exit_request.code, int) else _ERROR_EXIT
    try:
        return arguments.handler(arguments)
    except (SuitsError, OSError) as error:
        print(f"{_PROG}: error: {_message(error)}", file=sys.stderr)
        return _ERROR_EXIT
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130


def _message(error: Exception) -> str:
    """One line for an error: its text, or for a bare OSError its reason and file."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    return " ".join(str(error).split())


# --- shared options -----------------------------------------------------------------


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options of every subcommand that runs a registration."""
    parser.add_argument("--iterations", nargs="+", type=int, metavar="N",
                        help="maximum iterations per scale, or one number for all scales (default: 300 300 300)")
    parser.add_argument("--device", help="'auto' (CUDA when present, default), 'cpu' or 'cuda[:N]'")
    parser.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's setting)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _given(arguments: argparse.Namespace, *names: str) -> dict:
    """The options among ``names`` given on the command line (the others keep the library defaults)."""
    values = {name: getattr(arguments, name) for name in names}
    return {name: tuple(v) if isinstance(v, list) else v for name, v in values.items() if v is not None}


def _check_output_directory(directory: str, overwrite: bool) -> None:
    """Refuse before any work when ``directory`` is a file or, without ``overwrite``, not empty."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise FileExistsError(f"output {directory} is a file, not a directory; choose a directory")
    if not overwrite and os.path.isdir(directory) and os.listdir(directory):
        raise FileExistsError(
            f"output directory {directory} is not empty; pass --overwrite to replace the "
            "itk-suits files in it, or choose another directory"
        )


def _print_files(files: dict) -> None:
    for path in files.values():
        print(f"wrote {path}")


def _schedule_line(seconds: float, device: str, iterations: Sequence[int]) -> str:
    return f"time: {seconds:.1f} s on {device}; iterations per scale: {' '.join(map(str, iterations))}"


# --- register -----------------------------------------------------------------------


def _add_register(subparsers) -> None:
    parser = subparsers.add_parser(
        "register",
        help="register a moving image file to a fixed image file",
        description="Register MOVING onto FIXED with SUITS and write warped.nii.gz, displacement.nii.gz "
                    "(mm), transform.h5 (fixed-to-moving, readable by ITK and SimpleITK) and "
                    "checkerboard.png into OUT.",
    )
    parser.add_argument("fixed", metavar="FIXED", help="fixed image file (any format SimpleITK reads)")
    parser.add_argument("moving", metavar="MOVING", help="moving image file")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output directory")
    parser.add_argument("--features", help="'mind' (MIND-SSC, multi-modal, default) or 'intensity'")
    parser.add_argument("--fixed-mask", metavar="PATH", help="mask file on the fixed grid (non-zero = use)")
    parser.add_argument("--initial-transform", metavar="TRANSFORM",
                        help="'identity' (default), 'geometry' (image centres), 'moments' "
                             "(centres of mass) or a transform file")
    parser.add_argument("--grid-spacings", nargs="+", type=float, metavar="VOXELS",
                        help="control-point spacing per scale in fixed voxels (default: 20 10 7)")
    parser.add_argument("--smoothness", nargs="+", type=float, metavar="WEIGHT",
                        help="smoothness weight per scale, or one for all scales (default: 0.2 0.2 0.4)")
    parser.add_argument("--learning-rate", type=float, metavar="RATE",
                        help="grid Adam step in normalised grid units (default: 0.005)")
    _add_run_options(parser)
    parser.set_defaults(handler=_run_register)


def _run_register(arguments: argparse.Namespace) -> int:
    _check_output_directory(arguments.output, arguments.overwrite)
    from itk_suits.registration import register

    options = _given(arguments, "features", "fixed_mask", "initial_transform", "grid_spacings",
                     "iterations", "smoothness", "learning_rate", "device", "threads")
    result = register(arguments.fixed, arguments.moving, progress=not arguments.quiet, **options)
    files = result.save(arguments.output, overwrite=arguments.overwrite)
    _print_files(files)
    print(_schedule_line(result.seconds, result.device, [entry["iterations"] for entry in result.log]))
    return 0


# --- demo ---------------------------------------------------------------------------


def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="register the bundled BrainWeb T1/PD slices with a known deformation",
        description="Deform the bundled BrainWeb PD slice by a known smooth field, register the T1 slice "
                    "to it with MIND features and report the displacement error in mm inside the head.",
    )
    parser.add_argument("-o", "--output", default="itk-suits-demo", metavar="DIR",
                        help="output directory (default: ./itk-suits-demo)")
    _add_run_options(parser)
    parser.set_defaults(handler=_run_demo)


def _run_demo(arguments: argparse.Namespace) -> int:
    _check_output_directory(arguments.output, arguments.overwrite)
    from itk_suits.demo import run_demo

    report = run_demo(arguments.output, overwrite=arguments.overwrite, progress=not arguments.quiet,
                      **_given(arguments, "iterations", "device", "threads"))
    before, after = report["error_before"], report["error_after"]
    print(f"displacement error before: mean {before['mean']:.2f} mm, p95 {before['p95']:.2f} mm"
          f" / after: mean {after['mean']:.2f} mm, p95 {after['p95']:.2f} mm")
    print(f"folding: {report['folding_percent']:.3f} % of voxels (Jacobian determinant <= 0)")
    print(_schedule_line(report["seconds"], report["device"], report["iterations"]))
    print(f"figure: {report['files']['demo.png']}")
    return 0
