"""Rollout of a new model version: pure decisions (which version is on which track, and when it moves).

Like render/, nothing here performs I/O (import-linter enforces it): the kopf handlers gather what the
cluster and Prometheus show and pass it in, so every path is a unit test with an injected clock.
"""
