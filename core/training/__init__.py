"""Training a model on the reviews: batches, fit, checkpoints, resume, the training process.

What the package offers is `__all__`, each name imported from its module on first use (core/lazy.py).
"""

from core.lazy import public_names

__all__, __getattr__, __dir__ = public_names(
    __name__,
    {
        "batching": ("STEPS_PER_EXECUTION", "ReviewBatches", "validation_start"),
        "pad_start": ("pad_start_model", "starts_from_pads"),
        "process": ("LaunchSlot", "ProgressFile", "current_training", "stop_on_terminate", "stop_training"),
        "progress": ("JobSnapshot",),
        "resuming": ("resume",),
        "trainer": (
            "TrainingCallbacks",
            "cuts_batches",
            "fit_data",
            "load_run_model",
            "outcome_lines",
            "prepare_training",
            "steps_per_execution",
            "train",
            "training_arrays",
            "use_compilation_cache",
            "uses_xla",
        ),
    },
)
