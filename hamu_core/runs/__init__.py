"""Unlearning runs: UnlearningRun and its one step loop, building a run as the Studio does, comparisons,
sweeps, sequential requests and the SQLite run store.
"""
