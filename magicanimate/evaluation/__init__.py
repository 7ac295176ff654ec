"""Evaluation: per-frame metrics, FID / FID-VID / FVD, the harness behind ``scripts/evaluate.py``."""

from magicanimate.evaluation.frechet import feature_statistics, frechet_distance, frechet_distance_from_features
from magicanimate.evaluation.harness import METRICS, PROTOCOLS, EvalOptions, evaluate_folders, markdown_table

__all__ = [
    "EvalOptions", "METRICS", "PROTOCOLS", "evaluate_folders", "feature_statistics", "frechet_distance",
    "frechet_distance_from_features", "markdown_table",
]
