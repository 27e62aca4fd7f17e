"""``itk-suits register-batch``: register the pairs of a CSV file into one folder, locally or on Dask."""

from __future__ import annotations

import argparse
import os

from .common import REGISTRATION_OPTIONS, add_registration_options, add_run_options, given


def add(subparsers) -> None:
    parser = subparsers.add_parser(
        "register-batch",
        help="register every pair of a CSV file (a cohort), with a summary, resume and Dask",
        description="Register the pairs of PAIRS_CSV (columns fixed, moving and optionally fixed_mask, "
                    "fixed_labels, moving_labels, initial_transform, name; paths relative to the CSV's folder) "
                    "into OUT/<name>/ (the files of 'itk-suits register', warped_labels.nii.gz), with "
                    "OUT/summary.csv (status, seconds, folding %, Dice). Run again on the same OUT, it skips "
                    "the pairs that are finished. The exit status is 1 when a pair failed.",
    )
    parser.add_argument("pairs", metavar="PAIRS_CSV", help="the cohort's CSV file")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output folder of the cohort")
    add_registration_options(parser, " (for the pairs without an initial_transform column)")
    add_run_options(parser)
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="pairs of the same fixed size registered as one batched descent (default: 8 on "
                             "CUDA, 1 on a CPU)")
    parser.add_argument("--scheduler", metavar="local|ADDRESS",
                        help="run the pairs as Dask tasks: 'local' (a local cluster of --workers processes) or "
                             "the address of a Dask scheduler, e.g. tcp://host:8786 (needs itk-suits[dask])")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="worker processes of --scheduler local, one thread each (default: one per core)")
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    from itk_suits.cohort import register_many
    from itk_suits.cohort.outputs import SUMMARY_FILE
    from itk_suits.errors import ParameterError

    if arguments.workers is not None and arguments.scheduler != "local":
        raise ParameterError("--workers sets the size of a local cluster: use it with --scheduler local")
    rows = register_many(
        arguments.pairs, arguments.output, batch_size=arguments.batch_size, scheduler=arguments.scheduler,
        workers=arguments.workers, overwrite=arguments.overwrite, progress=not arguments.quiet,
        **given(arguments, *REGISTRATION_OPTIONS),
    )
    counts = {status: sum(row["status"] == status for row in rows) for status in ("ok", "skipped", "failed")}
    for row in rows:
        if row["status"] == "failed":
            print(f"{row['name']}: failed: {row['error']}")
    print(f"{counts['ok']} registered, {counts['skipped']} finished before, {counts['failed']} failed; "
          f"summary: {os.path.join(arguments.output, SUMMARY_FILE)}")
    return 1 if counts["failed"] else 0
