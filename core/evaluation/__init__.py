"""How good a model is and how fast: metrics, evaluation, comparisons, the int8 copy, benchmarks.

What the package offers is `__all__`, each name imported from its module on first use (core/lazy.py).
"""

from core.lazy import public_names

__all__, __getattr__, __dir__ = public_names(
    __name__,
    {
        "bench": ("run_bench",),
        "compare": (
            "CompareCallbacks",
            "comparable_problem",
            "compare_runs",
            "default_selection",
            "plan_comparison",
            "single_review_latency_ms",
        ),
        "comparison": ("load_comparison",),
        "evaluation": ("EvaluationCallbacks", "evaluate", "thresholds_by_role"),
        "int8_comparison": (
            "NO_DATA_PAGE",
            "compare_files",
            "quantization_summary",
            "quantize_export",
            "quantize_model",
            "reviews_to_score",
        ),
        "metrics": (
            "EvaluationCurves",
            "ThresholdMetrics",
            "confident_mistakes",
            "evaluation_curves",
            "score_split",
            "split_summary",
        ),
    },
)
