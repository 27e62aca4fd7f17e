"""Cohorts: many registrations into one output folder, with a summary, resume and Dask.

:func:`register_many` registers the pairs of a CSV file or a list, one
output folder per pair and one ``summary.csv``; on a GPU, pairs whose fixed
images have the same size run as one batched descent; with a Dask scheduler
each pair is a task on a worker.

Modules: :mod:`.pairs` (the CSV and the pairs, checked before any work),
:mod:`.outputs` (the output folder: finished pairs, records, the summary),
:mod:`.task` (register pairs and write their folders and rows),
:mod:`.cluster` (Dask) and :mod:`.runner` (``register_many``).
"""

from .pairs import COLUMNS, CohortPair, read_pairs_csv
from .runner import DEFAULT_GPU_BATCH_SIZE, register_many

__all__ = ["register_many", "read_pairs_csv", "CohortPair", "COLUMNS", "DEFAULT_GPU_BATCH_SIZE"]
