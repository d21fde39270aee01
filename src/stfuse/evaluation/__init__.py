"""``stfuse evaluate``: per-image CSV, mean ± std tables (Markdown, JSON) and a self-contained HTML report.

The Python API is :func:`evaluate_pairs` (with :func:`find_pairs` / :func:`resolve_dataset` to list the
pairs); :func:`read_gray_255` is the image reader that reproduces CDDFuse's numbers.

Names load on first use, so ``stfuse evaluate --help`` imports neither torch nor the metrics.
"""

from __future__ import annotations

from stfuse.utils.lazy import lazy_exports

_EXPORTS = {
    "EvaluationInputError": "stfuse.evaluation.io",
    "EvaluationResult": "stfuse.evaluation.evaluator",
    "SourcePair": "stfuse.evaluation.sources",
    "evaluate_pairs": "stfuse.evaluation.evaluator",
    "find_pairs": "stfuse.evaluation.sources",
    "match_fused": "stfuse.evaluation.sources",
    "read_gray_255": "stfuse.evaluation.io",
    "resolve_dataset": "stfuse.evaluation.sources",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
