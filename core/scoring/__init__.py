"""Scoring reviews with onnxruntime alone (never TensorFlow): the Predictor, explanations, files, Ray.

What the package offers is `__all__`, each name imported from its module on first use (core/lazy.py).
"""

from core.lazy import public_names

__all__, __getattr__, __dir__ = public_names(
    __name__,
    {
        "explanation": ("Explanation", "baseline", "explain", "first_words", "paragraphs", "trajectory"),
        "files": ("predict_csv",),
        "memory": ("MemoryCurve", "Probe", "memory_curve", "probe_review"),
        "predictor": ("Prediction", "Predictor", "model_path"),
        "ray": ("import_ray", "score_on_ray"),
        "words": ("WordScores", "file_embedding", "nearest_words", "word_map", "word_scores"),
        "table_io": (
            "Written",
            "file_format",
            "json_line",
            "parquet_bytes",
            "predict_table",
            "score_table",
            "write_predictions",
        ),
    },
)
