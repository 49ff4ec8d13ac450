"""`KLAnnealing`: drives every variational layer's ``kl_weight`` from `model.fit`."""

from __future__ import annotations

import math
import numbers

import keras

SCHEDULES = ("linear", "cosine", "cyclical", "constant")


def _variational_layers(model):
    from tfqbnn.layers import VariationalLayer

    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, VariationalLayer)]


def _number(name, value, what, ok, integer=False):
    """A real (or integer) argument for which ``ok`` holds, else a one-line ValueError naming it (NaN fails every
    comparison, so it is refused too)."""
    kinds = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kinds) or not ok(value):
        raise ValueError(f"`{name}` must be {what}; received {name}={value!r}")


class KLAnnealing(keras.callbacks.Callback):
    """Anneal the KL weight of every `VariationalLayer` (dense or convolutional), per training step.

    The weight goes from ``start`` to ``end`` over ``warmup`` of the training steps
    and stays at ``end`` afterwards:

    * ``"linear"``: straight ramp;
    * ``"cosine"``: half-cosine ramp (slow start and finish);
    * ``"cyclical"``: ``cycles`` linear ramps over the whole run, each reaching
      ``end`` at ``warmup`` of its cycle (Fu et al., 2019);
    * ``"constant"``: always ``end``.

    The current value is logged as ``kl_weight`` in the epoch logs (History,
    CSVLogger, TensorBoard).

    The layers' variables are assigned only when the scheduled value has moved by
    more than ``tolerance * |end - start|`` since the last assignment (and always
    when it reaches ``start`` or ``end``): an eager assignment per layer and step
    costs about 0.1 ms of Python, a tenth of a training step of the paper's MLP.

    Args:
        schedule: one of ``"linear"``, ``"cosine"``, ``"cyclical"``, ``"constant"``.
        start: initial weight (>= 0).
        end: final weight (>= 0).
        warmup: fraction of the steps (per cycle for ``"cyclical"``) spent ramping, in (0, 1].
        cycles: number of cycles for ``"cyclical"``.
        total_steps: total training steps; by default ``epochs * steps_per_epoch``
            taken from `model.fit`.
        tolerance: in [0, 1); the weights follow the schedule within
            ``tolerance * |end - start|``.  0 assigns at every step.
    """

    def __init__(self, schedule="linear", start=0.0, end=1.0, warmup=0.5, cycles=4, total_steps=None,
                 tolerance=0.01):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"`schedule` must be one of {list(SCHEDULES)}; received schedule={schedule!r}")
        _number("warmup", warmup, "in (0, 1]", lambda v: 0.0 < v <= 1.0)
        _number("start", start, "finite and >= 0", lambda v: 0.0 <= v < math.inf)
        _number("end", end, "finite and >= 0", lambda v: 0.0 <= v < math.inf)
        _number("cycles", cycles, "an integer >= 1", lambda v: v >= 1, integer=True)
        if total_steps is not None:
            _number("total_steps", total_steps, "an integer >= 1 or None", lambda v: v >= 1, integer=True)
        _number("tolerance", tolerance, "in [0, 1)", lambda v: 0.0 <= v < 1.0)
        self.schedule = schedule
        self.start = float(start)
        self.end = float(end)
        self.warmup = float(warmup)
        self.cycles = int(cycles)
        self.total_steps = total_steps
        self.tolerance = float(tolerance)
        self._step = 0
        self._layers = []
        self.value = self.start

    def weight_at(self, step, total):
        """The schedule's KL weight at global ``step`` of ``total`` steps."""
        total = max(int(total), 1)
        if self.schedule == "constant":
            return self.end
        if self.schedule == "cyclical":
            period = total / self.cycles
            frac = ((step % period) / period) / self.warmup
        else:
            frac = step / (self.warmup * total)
        frac = min(max(frac, 0.0), 1.0)
        if self.schedule == "cosine":
            frac = 0.5 - 0.5 * math.cos(math.pi * frac)
        return self.start + (self.end - self.start) * frac

    def on_train_begin(self, logs=None):
        self._layers = _variational_layers(self.model)
        if not self._layers:
            raise ValueError("KLAnnealing: the model has no variational layer (tfqbnn.layers.VariationalLayer)")
        if self.total_steps is None:
            steps = self.params.get("steps")
            if not steps:  # e.g. a tf.data pipeline with .filter: ramping over a guess would skip the warm-up
                raise ValueError(
                    "KLAnnealing: model.fit does not know the number of steps per epoch (dataset of unknown "
                    "cardinality); pass KLAnnealing(total_steps=...) or steps_per_epoch=... to fit")
            self._total = (self.params.get("epochs") or 1) * steps
        else:
            self._total = int(self.total_steps)
        self._step = 0  # on_epoch_begin re-aligns it, also when BackupAndRestore resumes mid-run
        self._set(self.weight_at(self._step, self._total), force=True)

    def on_train_batch_begin(self, batch, logs=None):
        self._set(self.weight_at(self._step, self._total))

    def on_train_batch_end(self, batch, logs=None):
        # counted here, not in batch_begin: with a dataset of unknown cardinality Keras calls
        # batch_begin once more at the end of each epoch, for the step that finds no data
        self._step += 1

    def on_epoch_begin(self, epoch, logs=None):
        steps = self.params.get("steps")
        if steps:
            self._step = epoch * steps

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["kl_weight"] = self.value

    def _set(self, value, force=False):
        value = float(value)
        moved = abs(value - self.value) > self.tolerance * abs(self.end - self.start)
        if force or moved or (value != self.value and value in (self.start, self.end)):
            self.value = value
            for layer in self._layers:
                layer.set_kl_weight(value)  # a lazily built layer takes it as its initial value


class FrozenSigmaCheck(keras.callbacks.Callback):
    """Warn once per layer, naming it, when a quantized layer's trained sigma sits mostly below half its sample
    grid step (`tfqbnn.moments.warn_frozen_sigma`): its sampled weights then round back to the mean and the layer
    is silently deterministic.

    Checked at the end of training (sigma starts at ``init_sigma``, far below the step, and grows while
    training); with ``every_epoch=True`` also after each epoch from ``start_epoch`` on.

    Args:
        fraction: warn when more than this fraction of a layer's weights is below half the step.
        every_epoch: also check at the end of every epoch (``>= start_epoch``, 0-based).
        start_epoch: first epoch checked when ``every_epoch``.
    """

    def __init__(self, fraction=0.5, every_epoch=False, start_epoch=1):
        super().__init__()
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"`fraction` must be in [0, 1); received fraction={fraction}")
        self.fraction = float(fraction)
        self.every_epoch = bool(every_epoch)
        self.start_epoch = int(start_epoch)
        self.warned = set()
        self.flagged = {}

    def _check(self):
        from tfqbnn.moments import warn_frozen_sigma

        self.flagged = warn_frozen_sigma(self.model, self.fraction, self.warned, where="FrozenSigmaCheck: ")

    def on_epoch_end(self, epoch, logs=None):
        if self.every_epoch and epoch >= self.start_epoch:
            self._check()

    def on_train_end(self, logs=None):
        self._check()
