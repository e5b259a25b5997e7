"""Runs sent to the tools people already have: MLflow (mlflow.py).

A layer of its own, above the store and the analysis: it reads run folders and
their records and never writes them; the run folder stays the truth.
"""
