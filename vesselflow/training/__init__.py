"""Training of the vessel models: checkpointed, resumable, distributed-ready."""

from .trainer import TrainOptions, train

__all__ = ["TrainOptions", "train"]
