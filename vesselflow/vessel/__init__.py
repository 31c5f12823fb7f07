"""Retinal vessel segmentation: models, data, inference, outputs, training, evaluation."""
