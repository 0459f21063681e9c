"""Datasets: the labelled-data container, built-in sets, validated uploads and forget-set selection.

Imports nothing else of hamu_core: data can be loaded and chosen before any model exists.
"""
