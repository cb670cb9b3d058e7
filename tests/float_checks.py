"""Scores compared where two computations meet: two graphs, two kernels, two batch shapes, two processes agree to
float32 rounding, never exactly. onnxruntime picks other kernels on other CPUs (with AVX-512 or without, Intel or AMD)
and rounds differently there, deterministically. Exact equality stays for integers and counts, and for one graph run
twice on the same input in one process."""

from collections.abc import Mapping, Sequence

import numpy as np

# A score is float32 (about 7 significant digits) after up to 500 recurrent steps: two kernels part by a few units in
# the last place of a step, 8.3e-7 at most seen on AVX-512 CPUs.
RTOL = 1e-5
ATOL = 1e-6


def assert_close(actual, expected, *, rtol: float = RTOL, atol: float = ATOL, err_msg: str = "") -> None:
    """Float arrays (or scalars, or lists) equal within float32 rounding, and of the same shape."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape, err_msg)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=err_msg)


def _fields(record) -> dict:
    return dict(record) if isinstance(record, Mapping) else record.to_dict()


def assert_same_records(got: Sequence, expected: Sequence, score_key: str = "score") -> None:
    """Prediction records (dicts, or objects with to_dict) equal field by field: labels, counts, rows and errors
    exactly; scores within float32 rounding; a missing score (None, or NaN from a table) on the same rows."""
    assert len(got) == len(expected), (len(got), len(expected))
    for index, (mine, theirs) in enumerate(zip(got, expected)):
        mine, theirs = _fields(mine), _fields(theirs)
        assert mine.keys() == theirs.keys(), (index, sorted(mine), sorted(theirs))
        score, wanted = mine.pop(score_key), theirs.pop(score_key)
        assert mine == theirs, (index, mine, theirs)
        if wanted is None or wanted != wanted:
            assert score is None or score != score, (index, score)
        else:
            assert_close(score, wanted, err_msg=f"record {index}")
