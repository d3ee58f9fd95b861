"""Questions that arrive together are encoded as one batch (dynamic batching, as in
text-embeddings-inference and Triton), with no cost to a lone question.

The rule is leader and followers, with no timer. A caller that finds the encoder idle leads:
once it holds the compute lock it encodes its own texts together with every call queued by then.
A caller that finds the encoder busy queues, and the first queued caller to run when the batch
in progress ends leads the next one. A lone question never waits; a question that arrives
during a batch waits at most for that batch (at most ``max_texts`` texts: a few ms of USE),
then shares the next one. One matrix product over many questions reads each weight once for all
of them, which is where a single core gains (for USE, per-question BLAS runs far below its
large-matrix rate).

The batch is computed while holding ``lock``: the process's one-compute-user-at-a-time lock
(``qa.retrieve``), so that a batch never competes with FAISS or another encoder for the cores.
A caller must not hold that lock while it waits here.

A text's vector is the one it gets alone up to float rounding (the batched products sum in
another order: about 1e-7), tests/test_batching.py.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from qa.embed import Embedder, Vectors
from qa.threads import apply as apply_thread_limits

MAX_TEXTS = 16


@dataclass
class _Call:
    texts: list[str]
    vectors: Vectors | None = None
    error: BaseException | None = None
    done: bool = False
    batch_size: int = 0  # how many calls shared its batch


class QueryBatcher:
    """``encode_queries`` of ``embedder``, concurrent callers' texts encoded together."""

    def __init__(
        self, embedder: Embedder, *, lock: threading.Lock | None = None, max_texts: int = MAX_TEXTS
    ) -> None:
        self.embedder = embedder
        self._lock = lock or threading.Lock()
        self._max_texts = max(1, max_texts)
        self._state = threading.Condition(threading.Lock())
        self._waiting: list[_Call] = []
        self._busy = False
        self.batches = 0  # batches computed, for tests and benchmarks
        self.texts = 0

    @property
    def waiting(self) -> int:
        """Calls queued and not yet taken into a batch."""
        with self._state:
            return len(self._waiting)

    def encode_queries(self, texts: list[str]) -> Vectors:
        call = _Call(list(texts))
        with self._state:
            self._waiting.append(call)
            while self._busy and not call.done:
                self._state.wait()
            lead = not call.done
            if lead:
                self._busy = True
        if lead:
            self._lead(call)
        if call.error is not None:
            raise call.error
        assert call.vectors is not None
        return call.vectors

    def _lead(self, leader: _Call) -> None:
        """Take the waiting calls once the compute lock is ours (whoever queued while it was
        busy joins), encode them in one call, hand each caller its rows."""
        batch = [leader]
        texts: list[str] = []
        try:
            with self._lock:
                with self._state:
                    batch = self._take(leader)
                texts = [text for call in batch for text in call.texts]
                apply_thread_limits()  # QA_THREADS in the leading thread (qa.threads)
                vectors = (
                    self.embedder.encode_queries(texts)
                    if texts
                    else np.zeros((0, self.embedder.dimension), dtype=np.float32)
                )
        except BaseException as exc:  # every caller of the batch sees the failure
            for call in batch:
                call.error = exc
        else:
            start = 0
            for call in batch:
                stop = start + len(call.texts)
                call.vectors = vectors[start:stop].copy()
                call.batch_size = len(batch)
                start = stop
        finally:
            with self._state:
                for call in batch:
                    call.done = True
                self._waiting = [call for call in self._waiting if not call.done]
                self._busy = False
                self.batches += 1
                self.texts += len(texts)
                self._state.notify_all()

    def _take(self, leader: _Call) -> list[_Call]:
        """The leader's call first, then the longest-waiting others within ``max_texts``."""
        batch = [leader]
        count = len(leader.texts)
        for call in self._waiting:
            if call is not leader and count + len(call.texts) <= self._max_texts:
                batch.append(call)
                count += len(call.texts)
        taken = {id(call) for call in batch}
        self._waiting = [call for call in self._waiting if id(call) not in taken]
        return batch
