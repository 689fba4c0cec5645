"""Leaf helpers shared by every layer: per-image random streams, the model-call counter, and the
pieces that keep a run's files safe (atomic writes, checksummed records, the output lock, retries
on out of memory).

Nothing here imports another camlang package, so any layer may use it.
"""
