"""Run ANTs (antspyx) on images in a folder; executed by the ANTs interpreter.

Usage: ``python _ants_worker.py FOLDER``. ``FOLDER/job.json`` holds
``{"type_of_transform": str, "reg_iterations": [int] or null (antspyx's
default), "random_seed": int}`` (threads: ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``); ``FOLDER`` holds
``fixed.mha``, ``moving.mha`` and optionally ``fixed_mask.mha``. Writes
``displacement_field.mha`` (the composed forward transforms of
``ants.registration`` as a physical displacement field on the fixed grid,
fixed point -> moving point, mm) and ``result.json`` (``{"seconds":
registration time, "options": the ants.registration options used,
"antspyx": its version}``).

This file imports nothing but the standard library, antspyx and SimpleITK,
so it runs in an environment without itk-suits.
"""

import json
import os
import sys
import time

# Run as a script, Python puts this folder first on sys.path, and its ants.py would shadow antspyx.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]

import ants  # noqa: E402
import ants.config  # noqa: E402
import SimpleITK as sitk  # noqa: E402

#: ITK's thread count, set by the caller (``threads``); all cores when unset.
THREADS_VARIABLE = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"


def registration_options(job):
    """Keyword arguments of ``ants.registration`` beyond the images."""
    options = {"type_of_transform": job["type_of_transform"], "mask_all_stages": True, "verbose": False}
    if job["reg_iterations"] is not None:
        options["reg_iterations"] = tuple(int(count) for count in job["reg_iterations"])
    return options


def main(folder):
    with open(os.path.join(folder, "job.json"), encoding="utf-8") as file:
        job = json.load(file)
    threads = os.environ.get(THREADS_VARIABLE)
    ants.config.set_ants_deterministic(True, job["random_seed"])  # it also sets one ITK thread: undone
    if threads is None:
        os.environ.pop(THREADS_VARIABLE, None)
    else:
        os.environ[THREADS_VARIABLE] = threads
    fixed = ants.image_read(os.path.join(folder, "fixed.mha"))
    moving = ants.image_read(os.path.join(folder, "moving.mha"))
    mask_path = os.path.join(folder, "fixed_mask.mha")
    mask = ants.image_read(mask_path) if os.path.exists(mask_path) else None
    options = registration_options(job)
    prefix = os.path.join(folder, "ants_")
    start = time.perf_counter()
    registration = ants.registration(fixed, moving, mask=mask, outprefix=prefix, **options)
    seconds = time.perf_counter() - start
    composed = ants.apply_transforms(fixed, moving, transformlist=registration["fwdtransforms"], compose=prefix)
    sitk.WriteImage(sitk.ReadImage(composed), os.path.join(folder, "displacement_field.mha"))
    with open(os.path.join(folder, "result.json"), "w", encoding="utf-8") as file:
        json.dump({"seconds": seconds, "options": {key: options[key] for key in sorted(options)},
                   "antspyx": getattr(ants, "__version__", "unknown")}, file)


if __name__ == "__main__":
    main(sys.argv[1])
