"""Run SimpleElastix on images in a folder; executed by the SimpleElastix interpreter.

Usage: ``python _simpleelastix_worker.py FOLDER``. ``FOLDER/job.json`` holds
``{"parameter_maps": [name or {key: [values]}], "parameter_files": [paths] or
null, "threads": int or null, "resolutions": int, "final_grid_spacing": float}``;
``FOLDER`` holds ``fixed.mha``, ``moving.mha`` and optionally ``fixed_mask.mha``.
Writes ``deformation_field.mha`` (physical displacements of the fixed grid's
voxels, fixed point -> moving point), ``result.json`` (``{"seconds":
registration time, "maps": the TransformParameters maps}``) and elastix's log
``elastix.log``.

This file imports nothing but the standard library and SimpleITK (the
SimpleElastix build), so it runs in an environment without itk-suits.
"""

import json
import os
import sys
import time

import SimpleITK as sitk


def parameter_maps(elastix, job):
    """The registration stages as SimpleITK parameter maps."""
    if job["parameter_files"]:
        return [elastix.ReadParameterFile(path) for path in job["parameter_files"]]
    maps = []
    for stage in job["parameter_maps"]:
        if isinstance(stage, str):
            maps.append(sitk.GetDefaultParameterMap(stage, job["resolutions"], job["final_grid_spacing"]))
        else:
            parameter_map = sitk.ParameterMap()
            for key, values in stage.items():
                parameter_map[key] = tuple(values)
            maps.append(parameter_map)
    return maps


def main(folder):
    with open(os.path.join(folder, "job.json"), encoding="utf-8") as file:
        job = json.load(file)
    elastix = sitk.ElastixImageFilter()
    fixed = sitk.ReadImage(os.path.join(folder, "fixed.mha"))
    elastix.SetFixedImage(fixed)
    elastix.SetMovingImage(sitk.ReadImage(os.path.join(folder, "moving.mha")))
    mask_path = os.path.join(folder, "fixed_mask.mha")
    if os.path.exists(mask_path):
        elastix.SetFixedMask(sitk.ReadImage(mask_path))
    maps = parameter_maps(elastix, job)
    elastix.SetParameterMap(maps[0])
    for parameter_map in maps[1:]:
        elastix.AddParameterMap(parameter_map)
    if job["threads"]:
        elastix.SetNumberOfThreads(job["threads"])
    elastix.SetOutputDirectory(folder)
    elastix.SetLogFileName("elastix.log")
    elastix.LogToConsoleOff()
    elastix.LogToFileOn()
    start = time.perf_counter()
    elastix.Execute()
    seconds = time.perf_counter() - start

    transform_maps = elastix.GetTransformParameterMap()
    transformix = sitk.TransformixImageFilter()
    transformix.SetTransformParameterMap(transform_maps)
    transformix.ComputeDeformationFieldOn()
    transformix.SetMovingImage(fixed)  # only its type matters: the field lies on the fixed grid
    transformix.SetOutputDirectory(folder)
    transformix.LogToConsoleOff()
    transformix.Execute()
    sitk.WriteImage(transformix.GetDeformationField(), os.path.join(folder, "deformation_field.mha"))
    with open(os.path.join(folder, "result.json"), "w", encoding="utf-8") as file:
        json.dump({"seconds": seconds, "maps": [dict(item) for item in transform_maps]}, file)


if __name__ == "__main__":
    main(sys.argv[1])
