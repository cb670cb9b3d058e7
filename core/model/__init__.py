"""The Keras model from a config, its weights read without TensorFlow, and the book's loop in NumPy.

What the package offers is `__all__`, each name imported from its module on first use (core/lazy.py).
"""

from core.lazy import public_names

__all__, __getattr__, __dir__ = public_names(
    __name__,
    {
        "backward": ("Gradients", "fall_to_half", "probability_gradients"),
        "build": ("build_model", "describe"),
        "keras_archive": ("read_model_weights",),
        "numpy_loop": ("reference_probabilities",),
        "trace": ("compare_implementations", "layer_terms", "loop_terms", "trace_review"),
    },
)
