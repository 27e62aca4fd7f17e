"""The ``itk-suits`` command line.

Subcommands::

    itk-suits register FIXED MOVING -o OUT [options]   register two image files
    itk-suits register-batch PAIRS_CSV -o OUT          register a cohort (summary, resume, Dask)
    itk-suits demo [-o DIR] [options]                  BrainWeb T1/PD demo with a known deformation
    itk-suits features IMAGE -o FEATS [options]        feature image (MIND or a learned model)
    itk-suits export WEIGHTS -o MODEL_DIR              torch feature weights -> ONNX model folder
    itk-suits compare FIXED MOVING -o DIR [options]    compare methods on two image files (report)
    itk-suits evaluate --dataset JSON -o DIR [options] compare methods over many pairs (report)
    itk-suits train --fixed-dir DIR ... -o MODEL_DIR   learn features from labelled images -> model folder

One module per command group adds its subcommands to the parser (an ``add``
function) and holds their handlers; a handler takes the parsed arguments and
returns the exit code. The library checks every value; the command line only
checks which options go together. Every error ends in one ``itk-suits: error:
...`` line on stderr: status 2 for errors of the input or the options
(:class:`~itk_suits.errors.SuitsError`, files that exist or cannot be
written), status 1 for anything else (``ITK_SUITS_TRACEBACK=1`` prints the
traceback). Handlers import the library when they run, so ``--help`` and
``--version`` stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Sequence

from itk_suits._version import __version__
from itk_suits.errors import SuitsError

from . import cohort, compare, demo, features, register, train
from .common import PROG, one_line

__all__ = ["main", "build_parser"]

#: Exit status of errors of the input or of the options.
USAGE_ERROR = 2
#: Exit status of any other failure.
FAILURE = 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``itk-suits`` with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="SUITS multi-modal deformable registration for ITK and SimpleITK images.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in (register, cohort, demo, features, compare, train):
        group.add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``itk-suits`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_request:  # --help, --version and usage errors
        return exit_request.code if isinstance(exit_request.code, int) else USAGE_ERROR
    try:
        return arguments.handler(arguments)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (SuitsError, OSError) as error:
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        return USAGE_ERROR
    except Exception as error:  # noqa: BLE001 - the command line's last line of defence
        if os.environ.get("ITK_SUITS_TRACEBACK"):
            traceback.print_exc()
        print(f"{PROG}: error: {type(error).__name__}: {one_line(error)} "
              "(set ITK_SUITS_TRACEBACK=1 for the traceback)", file=sys.stderr)
        return FAILURE
