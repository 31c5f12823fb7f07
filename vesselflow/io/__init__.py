"""Infrastructure both tasks share: image reading, files, encoders, model weights."""
