"""``stfuse evaluate``: per-image CSV, mean ± std tables (Markdown, JSON) and a self-contained HTML report.

The Python API is :func:`evaluate_pairs` (with :func:`find_pairs` / :func:`resolve_dataset` to list the
pairs); :func:`read_gray_255` is the image reader that reproduces CDDFuse's numbers.
"""

from stfuse.evaluation.evaluator import EvaluationResult, evaluate_pairs
from stfuse.evaluation.io import EvaluationInputError, read_gray_255
from stfuse.evaluation.sources import SourcePair, find_pairs, match_fused, resolve_dataset

__all__ = [
    "EvaluationInputError",
    "EvaluationResult",
    "SourcePair",
    "evaluate_pairs",
    "find_pairs",
    "match_fused",
    "read_gray_255",
    "resolve_dataset",
]
