"""Any SentenceTransformer by name or local path, loaded without network access.

Query/passage prompts are applied when the model defines them (e5, bge, nomic ... do).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from qa.embed import Vectors, normalize_rows
from qa.errors import ConfigError, DependencyMissingError
from qa.threads import apply as apply_thread_limits

_QUERY_PROMPTS = ("query", "search_query")
_PASSAGE_PROMPTS = ("passage", "document", "search_document", "corpus")


class SentenceTransformerEmbedder:
    def __init__(self, name_or_path: str, *, threads: int = 1) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise DependencyMissingError(
                "this backend needs: pip install torch==2.13.0 sentence-transformers"
            ) from None
        torch.set_num_threads(threads)
        try:
            self._model: Any = SentenceTransformer(
                name_or_path, device="cpu", local_files_only=True, trust_remote_code=False
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load sentence-transformers model {name_or_path!r} from disk: {exc}"
            ) from None
        self.model_id = f"sentence-transformers:{name_or_path}"
        get_dimension = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dimension = get_dimension()
        if not dimension:
            raise ConfigError(f"model {name_or_path!r} does not report an embedding dimension")
        self.dimension = int(dimension)
        prompts = dict(getattr(self._model, "prompts", {}) or {})
        self._query_prompt = next((p for p in _QUERY_PROMPTS if prompts.get(p)), None)
        self._passage_prompt = next((p for p in _PASSAGE_PROMPTS if prompts.get(p)), None)

    def _encode(self, texts: list[str], prompt_name: str | None) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        apply_thread_limits()  # QA_THREADS in the calling thread too (qa.threads)
        vectors = self._model.encode(
            texts,
            prompt_name=prompt_name,
            batch_size=32,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return normalize_rows(vectors)

    def encode_queries(self, texts: list[str]) -> Vectors:
        return self._encode(texts, self._query_prompt)

    def encode_passages(self, texts: list[str]) -> Vectors:
        return self._encode(texts, self._passage_prompt)
