"""Measuring models: metrics, population attacks, hardness, embeddings, the retrain reference as a target, reports.

Reads models and data; never runs unlearning itself, so a run can call it after every step.
"""
