"""A cohort on a Dask cluster (``dask.distributed``, an optional dependency).

Each pair is one task: file paths in, the pair's folder out, its summary row
back (:func:`~itk_suits.cohort.task.register_pairs` on the worker, with one
torch, SimpleITK and ITK thread). The scheduler is Dask's: a
``LocalCluster`` of single-threaded worker processes, any scheduler address
(e.g. one started by dask-jobqueue on Slurm), or a ``Client`` the caller
made. Workers must import itk-suits and read and write the same paths as the
caller (a shared file system).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator, Mapping, Sequence

from ..checks import checked_number
from ..errors import ParameterError
from .pairs import CohortPair
from .task import failed_row, register_pairs

__all__ = [
    "INSTALL_HINT", "require_distributed", "check_scheduler", "dask_client", "register_on_worker", "run_on_cluster",
    "single_threaded",
]

INSTALL_HINT = 'pip install "itk-suits[dask]"'


def require_distributed():
    """The ``distributed`` module, or a ParameterError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise ParameterError(
            f"running a cohort on a Dask scheduler needs dask.distributed, which is not installed: {INSTALL_HINT}"
        ) from None
    return distributed


def check_scheduler(scheduler, workers: int | None = None) -> int | None:
    """Check ``scheduler`` and ``workers`` before any work; the checked number of workers.

    Raises
    ------
    ParameterError
        dask.distributed is missing, ``scheduler`` is of another kind, or
        ``workers`` is given for a scheduler that is not ``"local"``.
    """
    distributed = require_distributed()
    if not (isinstance(scheduler, distributed.Client) or (isinstance(scheduler, str) and scheduler.strip())):
        raise ParameterError(f"scheduler must be None, 'local', a scheduler address such as 'tcp://host:8786' "
                             f"or a distributed.Client, got {scheduler!r}")
    if workers is None:
        return None
    if scheduler != "local":
        raise ParameterError("workers sets the size of a local cluster (scheduler='local'); another scheduler "
                             "brings its own workers")
    return checked_number(workers, "workers", 1, 100_000, integer=True)


@contextlib.contextmanager
def dask_client(scheduler, workers: int | None = None) -> Iterator:
    """A ``distributed.Client`` for ``scheduler``, closed afterwards when it was made here.

    Parameters
    ----------
    scheduler : "local", str or distributed.Client
        ``"local"``: a ``LocalCluster(n_workers=workers, threads_per_worker=1,
        processes=True)`` started for the run and stopped after it; another
        string: the address of a running scheduler (``"tcp://host:8786"``); a
        ``Client``: used as it is (not closed).
    workers : int, optional
        Worker processes of the local cluster (default: one per core).

    Raises
    ------
    ParameterError
        As :func:`check_scheduler`, and when no scheduler answers at the address.
    """
    workers = check_scheduler(scheduler, workers)
    distributed = require_distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if scheduler == "local":
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster, \
                distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(scheduler.strip())
    except (OSError, ValueError) as error:
        raise ParameterError(f"no Dask scheduler answers at {scheduler!r}: {error}") from error
    with client:
        yield client


def single_threaded() -> None:
    """One torch, SimpleITK and ITK thread in this process (a Dask worker runs one pair per core)."""
    import SimpleITK as sitk
    import torch

    torch.set_num_threads(1)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"  # read by ITK when it is first loaded
    if "itk" in sys.modules:
        sys.modules["itk"].MultiThreaderBase.SetGlobalDefaultNumberOfThreads(1)


def register_on_worker(pair: CohortPair, output_dir: str, options: Mapping) -> dict:
    """The task of one pair: register it on one thread, write its folder, return its summary row."""
    single_threaded()
    return register_pairs([pair], output_dir, options)[0]


def run_on_cluster(client, pairs: Sequence[CohortPair], output_dir: str,
                   options: Mapping) -> Iterator[tuple[CohortPair, dict]]:
    """Submit one task per pair and yield ``(pair, row)`` as tasks finish.

    A task that fails as a whole (a worker that died, a pair that could not
    be sent) gives a ``failed`` row; leaving the loop early cancels the tasks
    that have not finished.
    """
    distributed = require_distributed()
    output_dir = os.path.abspath(output_dir)
    futures = {client.submit(register_on_worker, pair, output_dir, dict(options), pure=False): pair
               for pair in pairs}
    try:
        for future in distributed.as_completed(list(futures)):
            pair = futures[future]
            try:
                row = future.result()
            except Exception as error:  # noqa: BLE001 - recorded for this pair; the others go on
                row = failed_row(pair, error)
            yield pair, row
    finally:
        client.cancel([future for future in futures if not future.done()])
