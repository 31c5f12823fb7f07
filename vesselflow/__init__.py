"""vesselflow: retinal vessel segmentation and super-resolution with conditional flows."""

__version__ = "0.1.0"
