"""Reviews in, token ids out: the IMDB sources, the text rule, splits and the tokenized-data cache.

What the package offers is `__all__`, each name imported from its module on first use (core/lazy.py).
"""

from core.lazy import public_names

__all__, __getattr__, __dir__ = public_names(
    __name__,
    {
        "examples": ("EXAMPLE_REVIEWS",),
        "load": (
            "DataError",
            "Dataset",
            "Review",
            "describe_source",
            "load_dataset",
            "read_reviews",
            "split_for_vocabulary",
        ),
        "splits": ("Split",),
        "summary": ("coverage", "label_counts", "length_summary", "review_as_read", "splits_of"),
        "text": ("OOV_TOKEN", "Vocabulary", "tokenize"),
        "text_batch": ("encode_batch",),
    },
)
