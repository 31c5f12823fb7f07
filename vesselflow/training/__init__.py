"""The generic training loop (:func:`fit`, :class:`LoopOptions`) and its checkpoints: atomic,
resumable, distributed-ready, for any task."""

from vesselflow.training.loop import LoopOptions, NonFiniteLossError, TrainTask, fit

__all__ = ["LoopOptions", "NonFiniteLossError", "TrainTask", "fit"]
