"""Backends: the reference evaluator (numpy), torch (eager and standalone source) and z3."""
