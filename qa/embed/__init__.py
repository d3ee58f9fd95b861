"""Embedders: one backend per file behind ``load_embedder(model_id)``.

Model ids (``QA_EMBED_MODEL``):
- ``use-multilingual-v3``: Universal Sentence Encoder Multilingual v3, in the wheel (default)
- ``sentence-transformers:<name or local path>``: any SentenceTransformer, loaded offline
- ``hash:<dim>``: a deterministic character-n-gram hashing embedder, for fast tests only
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from qa.errors import ConfigError

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Maps texts to L2-normalised float32 rows; queries and passages may be prompted apart."""

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def encode_queries(self, texts: list[str]) -> Vectors: ...

    def encode_passages(self, texts: list[str]) -> Vectors: ...


def load_embedder(model_id: str, *, threads: int = 1) -> Embedder:
    if model_id in ("use-multilingual-v3", "use-multilingual"):
        from qa.embed.use import UniversalSentenceEncoder

        return UniversalSentenceEncoder(threads=threads)
    if model_id.startswith("sentence-transformers:"):
        from qa.embed.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(model_id.split(":", 1)[1], threads=threads)
    if model_id.startswith("hash:"):
        from qa.embed.hashing import HashingEmbedder

        try:
            dimension = int(model_id.split(":", 1)[1])
        except ValueError:
            raise ConfigError(
                f"hash embedder needs a dimension, e.g. hash:256, got {model_id!r}"
            ) from None
        return HashingEmbedder(dimension)
    raise ConfigError(
        f"unknown embedding model {model_id!r}; use 'use-multilingual-v3', "
        "'sentence-transformers:<name or path>' or 'hash:<dim>'"
    )


def normalize_rows(vectors: npt.ArrayLike) -> Vectors:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(array / norms, dtype=np.float32)
