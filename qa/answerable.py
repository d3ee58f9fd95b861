"""Does the corpus answer the question? A calibrated guess from two retrieval signals.

- ``dense_top``: the best passage's dense score (chunk and best-sentence cosine, blended as
  the retriever ranks; its scale is the model's);
- ``coverage``: the IDF-weighted share of the question's lexical terms that occur together in
  one of the top three passages.

The question counts as answerable when either signal clears its threshold. Thresholds were
chosen on the gold set's dev split only (``qa eval --split dev``), allowing at most 5% of
answerable questions to be flagged. On the 89-question dev split (73 answerable), a dense
threshold of 0.31 for USE-multilingual-v3 and a coverage of 0.11 flag 4 of the 16 unanswerable
questions (three off-topic, one near miss) and 2 of the 73 answerable ones; the earlier 0.345,
chosen on 54 dev questions, misflagged 5 of 73 once the split grew. Questions that name the
corpus's own entities but ask for a fact it does not contain ("near misses") mostly pass:
telling them apart needs a reader model, not scores. For an embedder without a calibrated
threshold only coverage can flag, and only in lexical mode.
"""

from __future__ import annotations

import math

COVERAGE_THRESHOLD = 0.11
DENSE_THRESHOLDS = {"use-multilingual-v3": 0.31}
_DENSE_WIDTH = 0.04  # logistic widths: how fast confidence moves around each threshold
_COVERAGE_WIDTH = 0.03


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


def judge(model_id: str, dense_top: float | None, coverage: float) -> tuple[bool, float]:
    """(answerable, confidence in 0..1); confidence is 0.5 exactly at a threshold."""
    confidence = _sigmoid((coverage - COVERAGE_THRESHOLD) / _COVERAGE_WIDTH)
    threshold = DENSE_THRESHOLDS.get(model_id)
    if dense_top is not None:
        if threshold is None:
            return True, max(confidence, 0.5)  # no calibration for this model: never flag
        confidence = max(confidence, _sigmoid((dense_top - threshold) / _DENSE_WIDTH))
    return confidence >= 0.5, confidence
