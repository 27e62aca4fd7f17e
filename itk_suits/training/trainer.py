"""Training the feature networks: the paper's Algorithm 1, the unrolled mode and SDM regression.

The modes share the outer loop of Algorithm 1: the scales of the schedule
in order; per scale, every pair keeps its own control grid (its alignment
state, refined from the previous scale) and grid optimizer; the pair
presentation scheme (:mod:`.scheme`) draws mini-batches of pairs at mixed
alignment stages; each presentation advances a pair's grid and yields a
feature loss, and the feature optimizer (Adam) steps once per mini-batch.

* ``mode="algorithm1"``: a presentation runs ``grid_iterations`` (5) grid
  iterations with the current features (not tracked), then the tracked
  feature step is matched to the SDM step (:func:`.losses.step_matching_loss`).
* ``mode="unrolled"``: a presentation runs ``unrolled_steps`` grid iterations
  *tracked*, and the loss is the alignment of the SDMs they reach
  (:func:`.losses.unrolled_alignment_loss`).
* ``mode="sdm-regression"``: the features of each image regress the SDMs of
  merged label groups of that image (:func:`.losses.sdm_regression_loss`), an
  objective anchored in anatomy rather than in descent steps; with
  ``step_weight`` > 0 a presentation also advances the pair's grid as in
  Algorithm 1 and adds ``step_weight`` times the step loss.

Every loss is logged with the loss of constant features; their ratio is the
collapse signal (see :mod:`.losses`). ``epochs`` repeats the whole schedule,
each pass starting again from identity grids: on the same pairs, or, when
the pairs come from a function of the epoch (e.g. new synthetic pairs every
epoch), on fresh ones, so that the networks cannot fit a fixed set of pairs.

A run can be interrupted and resumed exactly: :meth:`FeatureTrainer.state_dict`
holds everything the loop carries between feature updates (the feature
optimizer, the pairs' control grids and grid optimizers, the presentation
scheme of the current scale, the position in the schedule, the random states
and the history), and :meth:`FeatureTrainer.load_state_dict` restores it; the
network weights are saved separately (:mod:`.checkpoint`).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..core.descent import confidence_floor
from ..core.optimizer import BSplineDescentStep, DescentSettings, GridAdam, adam_learning_rate
from ..schedule import Scale, build_schedule
from ..checks import checked_number
from ..errors import ParameterError
from ..features.cnn import FeaturePair
from .checkpoint import ADDED_RUN_ENTRIES
from .losses import STEP_LOSSES, LossValue, sdm_regression_loss, step_matching_loss, unrolled_alignment_loss
from .scheme import presentation_scheme

__all__ = ["TrainingPair", "TrainingSettings", "FeatureTrainer", "MODES"]

MODES = ("algorithm1", "unrolled", "sdm-regression")


@dataclass
class TrainingPair:
    """One training pair on a common grid.

    Attributes
    ----------
    fixed, moving : torch.Tensor
        ``[1, 1, *spatial]`` intensities (the moving image of another subject and
        modality, already on the fixed grid).
    fixed_sdm, moving_sdm : torch.Tensor
        ``[1, L + 1, *spatial]`` scaled signed distance maps (background and each label).
    """

    fixed: torch.Tensor
    moving: torch.Tensor
    fixed_sdm: torch.Tensor
    moving_sdm: torch.Tensor

    def to(self, device) -> "TrainingPair":
        return TrainingPair(*(t.to(device) for t in (self.fixed, self.moving, self.fixed_sdm, self.moving_sdm)))


@dataclass(frozen=True)
class TrainingSettings:
    """Settings of feature training (defaults: the paper's numbers where it gives them).

    Attributes
    ----------
    mode : {"algorithm1", "unrolled", "sdm-regression"}
        Step matching (the paper), unrolled alignment, or regression of
        merged-label SDMs (anatomy-anchored).
    scales : tuple of Scale
        Grid spacings (voxels), grid iterations per pair and smoothness per scale.
    grid_iterations : int
        Grid iterations between two feature updates (Algorithm 1: 5).
    unrolled_steps : int
        Tracked grid iterations per presentation (unrolled mode).
    unrolled_step_size : float
        Gradient step of those iterations, voxels per voxel of mean descent step
        (see :func:`.losses.unrolled_alignment_loss`).
    feature_learning_rate : float
        Adam learning rate of the feature networks (0.001).
    batch_pairs : int
        Pairs per mini-batch (2).
    subintervals : int
        Rounds ``p`` of the pair presentation scheme.
    sdm_band : float
        Algorithm 1 supervises where ``|SDM| <`` this (0.1).
    step_loss : {"mse", "cosine"}
        Algorithm 1's step mismatch: the paper's MSE, or one minus the cosine
        (scale-invariant, no collapse minimum; see :func:`.losses.step_matching_loss`).
    step_weight : float
        ``mode="sdm-regression"``: weight of the step loss added as an
        auxiliary term, at least 0 (0: none, and the grids are not advanced).
    descent : DescentSettings
        Grid Adam step (normalised grid units), Adam settings and confidence
        floor of the grid optimizer.
    seed : int
        Seeds the presentation scheme and torch.
    epochs : int
        Passes over the whole schedule, each from identity grids.
    """

    mode: str = "algorithm1"
    scales: tuple = field(default_factory=build_schedule)
    grid_iterations: int = 5
    unrolled_steps: int = 10
    unrolled_step_size: float = 2.0
    feature_learning_rate: float = 1e-3
    batch_pairs: int = 2
    subintervals: int = 4
    sdm_band: float = 0.1
    step_loss: str = "mse"
    step_weight: float = 0.0
    descent: DescentSettings = field(default_factory=DescentSettings)
    seed: int = 0
    epochs: int = 1

    def presentations(self, scale: Scale) -> int:
        """Presentations of each pair at ``scale``: its grid iterations per presentation."""
        per = self.unrolled_steps if self.mode == "unrolled" else self.grid_iterations
        return max(1, scale.iterations // per)

    def to_dict(self) -> dict:
        """The settings as JSON-ready values (scales as lists), for logs, cards and checkpoints."""
        return json.loads(json.dumps(asdict(self)))


@dataclass
class _PairState:
    """A pair's alignment state at the current scale."""

    module: BSplineDescentStep
    coefficients: torch.Tensor
    optimizer: GridAdam
    fixed_sdm: torch.Tensor
    moving_sdm: torch.Tensor


class FeatureTrainer:
    """Trains a :class:`FeaturePair` on pairs with signed distance maps.

    Parameters
    ----------
    networks : FeaturePair
        The feature networks (updated in place).
    pairs : sequence of TrainingPair, or callable
        Training pairs (moved to the networks' device), or a function
        ``pairs(epoch) -> sequence of TrainingPair`` giving the pairs of each
        epoch (the same number every epoch; it must return the same pairs for
        the same epoch so that a run can be resumed).
    settings : TrainingSettings
        Mode and schedule.

    Attributes
    ----------
    history : list of dict
        One record per feature update: ``epoch``, ``scale`` and ``batch`` (the
        position in the schedule; ``batches`` is the number of updates of that
        scale), ``update`` (counted from 0 over the run), ``loss``,
        ``constant_loss``, ``ratio`` and ``seconds`` (training time so far).
    """

    def __init__(self, networks: FeaturePair, pairs: Sequence[TrainingPair], settings: TrainingSettings = TrainingSettings()):
        if settings.mode not in MODES:
            raise ParameterError(f"unknown training mode {settings.mode!r}; use one of {MODES}")
        if settings.step_loss not in STEP_LOSSES:
            raise ParameterError(f"unknown step loss {settings.step_loss!r}; use one of {STEP_LOSSES}")
        if not settings.scales:
            raise ParameterError("feature training needs at least one scale")
        if isinstance(settings.epochs, bool) or not isinstance(settings.epochs, int) or settings.epochs < 1:
            raise ParameterError(f"epochs must be a positive integer, got {settings.epochs!r}")
        checked_number(settings.step_weight, "step_weight", 0.0)
        self.networks = networks
        self.device = next(networks.parameters()).device
        self._pair_source = pairs if callable(pairs) else None
        self.pairs = self._epoch_pairs(0) if callable(pairs) else self._on_device(pairs)
        self.settings = settings
        self.optimizer = torch.optim.Adam(networks.parameters(), lr=settings.feature_learning_rate)
        self.rng = np.random.default_rng(settings.seed)
        self.history: list[dict] = []
        # position in the schedule: the scale being run (-1 before the first), its scheme, batches done
        self._epoch, self._scale, self._batch = 0, -1, 0
        self._scheme: list[list[int]] = []
        self._states: list[_PairState] | None = None
        self._elapsed = 0.0

    def _on_device(self, pairs: Sequence[TrainingPair]) -> list[TrainingPair]:
        if not pairs:
            raise ParameterError("feature training needs at least one pair")
        return [pair.to(self.device) for pair in pairs]

    def _epoch_pairs(self, epoch: int) -> list[TrainingPair]:
        """The pairs of ``epoch`` from the pair function, checked to keep their number."""
        pairs = self._on_device(list(self._pair_source(epoch)))
        if epoch > 0 and len(pairs) != len(self.pairs):
            raise ParameterError(
                f"the pair function gave {len(pairs)} pairs for epoch {epoch} and {len(self.pairs)} before; "
                "it must give the same number every epoch"
            )
        return pairs

    @property
    def finished(self) -> bool:
        """Whether every update of every epoch and scale is done."""
        return self._batch == len(self._scheme) and self._next_position(self._epoch, self._scale) is None

    def planned_updates(self) -> int:
        """Feature updates of the whole run, done and to come.

        The schemes of the scales still to come are drawn with a copy of the
        random state, so the count is exact and the run is not disturbed.
        """
        rng = copy.deepcopy(self.rng)
        total = len(self.history) + len(self._scheme) - self._batch
        position = self._next_position(self._epoch, self._scale)
        while position is not None:
            total += len(self._draw_scheme(position[1], rng))
            position = self._next_position(*position)
        return total

    def train(self, callback: Callable[[dict], None] | None = None) -> list[dict]:
        """Run (or, after :meth:`load_state_dict`, continue) every epoch and scale.

        Parameters
        ----------
        callback : callable, optional
            Called with each new record of :attr:`history`, after the update;
            :meth:`state_dict` then describes the run up to and including it.

        Returns
        -------
        list of dict
            :attr:`history`.
        """
        if self._scale < 0:
            torch.manual_seed(self.settings.seed)
        start = time.perf_counter() - self._elapsed
        while True:
            if self._batch == len(self._scheme):
                position = self._next_position(self._epoch, self._scale)
                if position is None:
                    return self.history
                self._start_scale(*position)
            scale = self.settings.scales[self._scale]
            values = [self.present(self.pairs[i], self._states[i], scale) for i in self._scheme[self._batch]]
            loss = sum(value.loss for value in values) / len(values)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self._batch += 1
            self._elapsed = time.perf_counter() - start
            constant = sum(value.constant for value in values) / len(values)
            record = {
                "epoch": self._epoch, "scale": self._scale, "batch": self._batch - 1,
                "batches": len(self._scheme), "update": len(self.history), "loss": float(loss.detach()),
                "constant_loss": constant, "ratio": float(loss.detach()) / max(constant, 1e-12),
                "seconds": self._elapsed,
            }
            self.history.append(record)
            if callback is not None:
                callback(record)

    def _next_position(self, epoch: int, scale: int) -> tuple[int, int] | None:
        """The (epoch, scale) after ``scale`` of ``epoch``; None at the end of the run."""
        if scale + 1 < len(self.settings.scales):
            return epoch, scale + 1
        if epoch + 1 < self.settings.epochs:
            return epoch + 1, 0
        return None

    def _draw_scheme(self, index: int, rng: np.random.Generator) -> list[list[int]]:
        presentations = self.settings.presentations(self.settings.scales[index])
        return presentation_scheme(len(self.pairs), presentations, self.settings.subintervals,
                                   self.settings.batch_pairs, rng)

    def _start_scale(self, epoch: int, index: int) -> None:
        """Grids of scale ``index`` (refined from the previous scale, identity at an epoch's start) and its scheme."""
        previous = self._states if index > 0 else None
        if index == 0 and epoch > 0 and self._pair_source is not None:
            self.pairs = self._epoch_pairs(epoch)
        scale = self.settings.scales[index]
        self._states = [self._scale_state(pair, scale, None if previous is None else previous[i])
                        for i, pair in enumerate(self.pairs)]
        self._scheme = self._draw_scheme(index, self.rng)
        self._epoch, self._scale, self._batch = epoch, index, 0

    def state_dict(self) -> dict:
        """Everything :meth:`train` carries between two feature updates, except the network weights.

        Returns
        -------
        dict
            ``optimizer`` (the feature optimizer's state), ``history``,
            ``epoch``, ``scale``, ``batch`` (updates done in the scale's
            ``scheme``), ``update`` (updates done), ``grids`` (per pair: control
            coefficients and grid-Adam moments and step count, or None before
            the first scale), ``elapsed`` (seconds), ``numpy_rng`` (JSON),
            ``torch_rng``, ``cuda_rng`` and ``settings``
            (:meth:`TrainingSettings.to_dict`). Plain values and CPU tensors only
            (loadable with ``torch.load(..., weights_only=True)``); the
            optimizer state references the live tensors.
        """
        grids = None if self._states is None else [
            {"coefficients": state.coefficients.detach().cpu().clone(),
             "first": state.optimizer.first.detach().cpu().clone(),
             "second": state.optimizer.second.detach().cpu().clone(),
             "steps": state.optimizer.steps}
            for state in self._states
        ]
        return {
            "optimizer": self.optimizer.state_dict(),
            "history": [dict(record) for record in self.history],
            "epoch": self._epoch, "scale": self._scale, "batch": self._batch, "update": len(self.history),
            "scheme": [list(batch) for batch in self._scheme],
            "grids": grids,
            "elapsed": self._elapsed,
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "settings": self.settings.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` output (load the network weights separately).

        Raises
        ------
        ParameterError
            The state was saved with other settings or for other pairs.
        """
        current = self.settings.to_dict()
        # states saved before a setting existed had the value it has there
        saved = {**ADDED_RUN_ENTRIES["settings"], **state["settings"]}
        differing = sorted(key for key in current if saved.get(key) != current[key])
        if differing:
            raise ParameterError(
                f"the saved training state has other settings ({', '.join(differing)} differ); resume with "
                "the settings it was saved with"
            )
        if self._pair_source is not None and int(state["epoch"]) > 0:
            self.pairs = self._epoch_pairs(int(state["epoch"]))
        grids = state["grids"]
        if grids is not None and len(grids) != len(self.pairs):
            raise ParameterError(f"the saved training state holds {len(grids)} pairs, this trainer {len(self.pairs)}")
        states = None
        if grids is not None:
            scale = self.settings.scales[state["scale"]]
            states = [self._scale_state(pair, scale, None) for pair in self.pairs]
            for number, (pair_state, saved) in enumerate(zip(states, grids)):
                if tuple(saved["coefficients"].shape) != tuple(pair_state.coefficients.shape):
                    raise ParameterError(
                        f"the saved control grid of pair {number} has shape {tuple(saved['coefficients'].shape)}, "
                        f"this pair's {tuple(pair_state.coefficients.shape)}: the pairs differ"
                    )
                pair_state.coefficients.copy_(saved["coefficients"])
                pair_state.optimizer.first.copy_(saved["first"])
                pair_state.optimizer.second.copy_(saved["second"])
                pair_state.optimizer.steps = int(saved["steps"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = [dict(record) for record in state["history"]]
        self._epoch, self._scale, self._batch = int(state["epoch"]), int(state["scale"]), int(state["batch"])
        self._scheme = [list(batch) for batch in state["scheme"]]
        self._states = states
        self._elapsed = float(state["elapsed"])
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available() and len(state["cuda_rng"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def _scale_state(self, pair: TrainingPair, scale: Scale, previous: _PairState | None) -> _PairState:
        shape = pair.fixed.shape[2:]
        module = BSplineDescentStep(shape, scale.grid_spacing, scale.resolution, self.device)
        if previous is None:
            coefficients = module.grid.zeros()
        else:
            coefficients = previous.module.grid.refine(previous.coefficients, module.grid)
        rate = adam_learning_rate(shape, self.settings.descent.learning_rate)
        optimizer = GridAdam(coefficients, rate, self.settings.descent.betas, self.settings.descent.adam_eps)
        return _PairState(module, coefficients, optimizer, module.level(pair.fixed_sdm), module.level(pair.moving_sdm))

    def present(self, pair: TrainingPair, state: _PairState, scale: Scale) -> LossValue:
        """One presentation: advance the pair's alignment and return its feature loss."""
        module = state.module
        fixed_features = self.networks(pair.fixed, role="fixed")
        moving_features = self.networks(pair.moving, role="moving")
        fixed, moving = module.level(fixed_features), module.level(moving_features)
        descent = self.settings.descent
        if self.settings.mode == "unrolled":
            value, reached = unrolled_alignment_loss(
                module, fixed, moving, state.fixed_sdm, state.moving_sdm, state.coefficients,
                scale.smoothness, descent, self.settings.unrolled_steps, self.settings.unrolled_step_size)
            state.coefficients.copy_(reached)
            return value
        if self.settings.mode == "algorithm1":
            return self._advance_and_match_steps(fixed, moving, state, scale)
        value = sdm_regression_loss(fixed_features, moving_features, pair.fixed_sdm, pair.moving_sdm)
        weight = self.settings.step_weight
        if weight == 0:
            return value
        steps = self._advance_and_match_steps(fixed, moving, state, scale)
        return LossValue(value.loss + weight * steps.loss, value.constant + weight * steps.constant)

    def _advance_and_match_steps(self, fixed, moving, state: _PairState, scale: Scale) -> LossValue:
        """Algorithm 1's presentation: ``grid_iterations`` untracked grid iterations, then the step loss."""
        module, descent = state.module, self.settings.descent
        with torch.no_grad():
            eps = confidence_floor(fixed, descent.confidence)
            for _ in range(self.settings.grid_iterations):
                step = module.step(fixed, moving, state.coefficients, eps)
                state.optimizer.step(module.grid_gradient(step, state.coefficients, scale.smoothness))
        return step_matching_loss(module, fixed, moving, state.fixed_sdm, state.moving_sdm, state.coefficients,
                                  descent, self.settings.sdm_band, self.settings.step_loss)
