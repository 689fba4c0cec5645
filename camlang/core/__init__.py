"""Leaf helpers shared by every layer: per-image random streams and the model-call counter.

Nothing here imports another camlang package, so any layer may use it.
"""
