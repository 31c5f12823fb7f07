"""The batch runner behind ``vesselflow segment`` and ``vesselflow sr upscale``."""
