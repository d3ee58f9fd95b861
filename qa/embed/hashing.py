"""Character-n-gram feature hashing to a unit vector: deterministic, instant, for fast tests.

It knows no semantics (no cross-lingual matching); never use it to judge retrieval quality.
"""

from __future__ import annotations

import hashlib

import numpy as np

from qa.embed import Vectors, normalize_rows


class HashingEmbedder:
    def __init__(self, dimension: int = 256) -> None:
        if dimension < 8:
            raise ValueError("hash embedder dimension must be at least 8")
        self.dimension = dimension
        self.model_id = f"hash:{dimension}"

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        compact = "".join(text.lower().split())
        for n in (1, 2):
            for i in range(len(compact) - n + 1):
                digest = hashlib.blake2b(compact[i : i + n].encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                sign = 1.0 if value & 1 else -1.0
                vector[(value >> 1) % self.dimension] += sign
        return vector

    def _encode(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return normalize_rows(np.stack([self._vector(t) for t in texts]))

    def encode_queries(self, texts: list[str]) -> Vectors:
        return self._encode(texts)

    def encode_passages(self, texts: list[str]) -> Vectors:
        return self._encode(texts)
