"""From a run to one self-describing .onnx file: conversion, parity, upgrades, the file's metadata.

What the package offers is `__all__`, each name imported from its module on first use (core/lazy.py).
"""

from core.lazy import public_names

__all__, __getattr__, __dir__ = public_names(
    __name__,
    {
        "convert": ("export_run",),
        "file_summary": ("file_notes", "file_problem", "generic_loops", "io_rows", "metadata_rows"),
        "graph": ("op_counts", "recurrent_layers"),
        "model_file": (
            "ModelFileError",
            "PARITY_TOLERANCE",
            "STEPS_SWITCH_NAME",
            "check_threshold",
            "has_steps_switch",
            "label_names",
            "load_session",
            "positive",
            "read_model_file",
            "text_path",
            "with_threshold",
            "write_threshold",
        ),
        "passes.clean_rows": ("has_clean_rows_path",),
        "passes.native_ops": ("keras_weights", "numpy_weights"),
        "passes.pass_list": ("BATCH_SCAN", "CLEAN_ROWS", "STEPS_SWITCH", "without"),
        "quantize": ("float_metadata", "int8_path", "quantize_file"),
        "text_file": ("write_text_file",),
        "web_page": ("check_web_folder", "runtime_folder", "write_web_page"),
    },
)
