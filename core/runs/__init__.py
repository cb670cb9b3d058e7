"""Run folders: the store that writes and reads them, their table and their zip archive.

What the package offers is `__all__`, each name imported from its module on first use (core/lazy.py).
"""

from core.lazy import public_names

__all__, __getattr__, __dir__ = public_names(
    __name__,
    {
        "archive": ("run_zip",),
        "store": ("RunInfo", "RunStore", "read_run", "read_vocabulary"),
        "table": (
            "BEST_EPOCH_COLUMN",
            "PEAK_COLUMN",
            "config_differences",
            "listed_runs",
            "run_record",
            "run_row",
            "runs_table",
            "test_accuracy",
            "text_table",
            "training_seconds",
        ),
    },
)
