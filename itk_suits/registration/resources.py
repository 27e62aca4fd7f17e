"""What a registration needs from the machine: memory, threads, and out-of-memory errors.

The estimate follows the two peaks of a registration of ``N`` fixed voxels,
``C`` feature channels, ``d`` dimensions, with features on ``N_f <= N``
voxels (:func:`~itk_suits.registration.inputs.feature_grid`):

* always on the host: the fixed, moving, resampled moving and warped images
  (4 float32 per voxel);
* while features are computed, on the descent device: the fixed and the
  moving features and the temporaries of computing one of them
  (:data:`DEVICE_BYTES_PER_VOXEL_CHANNEL` per feature voxel and channel);
* while the result is built, on the host: the dense field in float64 and its
  copy in the transform (2 float64 of ``d`` components per voxel); the
  features are gone by then.

On a CPU both peaks come out of host memory and the larger one counts.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import ResourceError
from .inputs import feature_grid

__all__ = [
    "memory_estimate", "available_memory", "check_memory", "out_of_memory_guard", "default_threads", "torch_threads",
]

#: Bytes per feature voxel and channel: fixed and moving features plus the
#: temporaries of computing one of them (measured for MIND-SSC: about 21).
DEVICE_BYTES_PER_VOXEL_CHANNEL = 24
_FLOAT32, _FLOAT64 = 4, 8


def memory_estimate(size: Sequence[int], channels: int, device: torch.device,
                    feature_voxels: int | None = None) -> dict[str, int]:
    """Peak bytes a registration needs, by where they are needed.

    Parameters
    ----------
    size : sequence of int
        Fixed image size (any order).
    channels : int
        Feature channels.
    device : torch.device
        Where the descent runs.
    feature_voxels : int, optional
        Voxels of the working grid the features are computed on (default: the
        native working grid of ``size``, see :func:`~itk_suits.registration.inputs.feature_grid`).

    Returns
    -------
    dict
        ``{"host": bytes, "device": bytes}``; ``"device"`` is 0 on a CPU, where
        everything is host memory.
    """
    voxels = int(np.prod([int(n) for n in size]))
    ndim = len(size)
    if feature_voxels is None:
        feature_voxels = int(np.prod(feature_grid(tuple(size))[0]))
    images = voxels * 4 * _FLOAT32
    features = feature_voxels * channels * DEVICE_BYTES_PER_VOXEL_CHANNEL
    field = voxels * 2 * ndim * _FLOAT64
    if device.type == "cpu":
        return {"host": images + max(features, field), "device": 0}
    return {"host": images + field, "device": features}


def available_memory(device: torch.device) -> int:
    """Bytes free for new arrays on ``device``: host memory available without swapping (page cache
    counts as free), or the free memory of a CUDA device."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def check_memory(size: Sequence[int], channels: int, device: torch.device,
                 feature_voxels: int | None = None) -> None:
    """Refuse a registration that cannot fit before any work is done (arguments as :func:`memory_estimate`).

    Raises
    ------
    ResourceError
        Naming the image size, the memory needed and free on each side, and the fix.
    """
    need = memory_estimate(size, channels, device, feature_voxels)
    free = {"host": available_memory(torch.device("cpu"))}
    if device.type == "cuda":
        free["device"] = available_memory(device)
    for where in free:
        if need[where] > free[where]:
            place = "host memory" if where == "host" else str(device)
            raise ResourceError(
                f"out-of-memory risk: registering a {tuple(size)} image with {channels} feature channels needs "
                f"about {need[where] / 2**30:.1f} GiB of {place}, {free[where] / 2**30:.1f} GiB are free; "
                "downsample the images (e.g. sitk.Shrink) or crop them"
                + (", or run on the CPU (device='cpu')" if where == "device" else "")
            )


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


@contextlib.contextmanager
def out_of_memory_guard(size: Sequence[int], channels: int, device: torch.device) -> Iterator[None]:
    """Turn torch's out-of-memory errors (CUDA or CPU) into a :class:`ResourceError` naming the image."""
    try:
        yield
    except (MemoryError, RuntimeError) as error:
        if isinstance(error, ResourceError) or not _is_out_of_memory(error):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        fixes = "downsample or crop the images, use fewer feature channels ('mind' instead of a '+' combination)"
        if device.type == "cuda":
            fixes += ", free the GPU of other work, or run on the CPU (device='cpu')"
        raise ResourceError(
            f"out of memory on {device} registering a {tuple(size)} image with {channels} feature channels "
            f"({np.prod(size) / 1e6:.1f} M voxels): {fixes}"
        ) from error


def default_threads(voxels: int, device: torch.device, threshold: int) -> int | None:
    """One thread for CPU registrations under ``threshold`` voxels, else ``None`` (torch's setting)."""
    return 1 if device.type == "cpu" and voxels < threshold else None


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (``None``: unchanged), then restore them."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
