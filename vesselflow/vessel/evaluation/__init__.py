"""Evaluation of vessel maps by the paper's protocol and the field's (FOV, a-priori threshold)."""
