"""The served index generation and how it is replaced: load the new one fully, then swap.

A request takes the current ``Retriever`` once and keeps it to the end, so it is answered from
one complete generation even while a newer one is swapped in.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from qa.answer import warm_up as warm_up_answers
from qa.config import Settings
from qa.embed import Embedder
from qa.errors import IndexNotFoundError, QAError
from qa.retrieve import Retriever
from qa.service import open_embedder, open_retriever, served_generation

log = logging.getLogger("qa.api")


@dataclass
class ServiceState:
    settings: Settings
    retriever: Retriever | None = None
    embedder: Embedder | None = None
    problem: QAError | None = None  # why the served index is missing, or the last reload failed
    _reload_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def require(self) -> Retriever:
        retriever = self.retriever
        if retriever is None:
            raise self.problem or IndexNotFoundError("the index is not loaded yet")
        return retriever

    def reload(self, *, force: bool = False) -> bool:
        """Serve the generation the backend points at (``CURRENT`` under the index directory, or
        the Milvus alias) if it is new; True when it was swapped in.

        A generation that fails to load leaves the old one serving and is reported.
        """
        with self._reload_lock:
            served = self.retriever.index.generation if self.retriever else None
            pointed: str | None = None
            try:
                pointed = served_generation(self.settings)
                if not force and pointed is not None and pointed == served:
                    return False
                if self.embedder is None:
                    self.embedder = open_embedder(self.settings)
                retriever = open_retriever(self.settings, self.embedder)
                retriever.warm_up()  # before it serves: the first question should not wait
                warm_up_answers()
            except QAError as exc:
                if self.retriever is None or not isinstance(exc, IndexNotFoundError):
                    self.problem = exc
                name = pointed or "(none)"
                log.warning("refused index generation %s: %s; still serving %s", name, exc, served)
                return False
            self.retriever, self.problem = retriever, None
            counts = retriever.index.manifest.get("counts", {})
            log.info(
                "serving index generation %s (%s documents, %s chunks; was %s)",
                retriever.index.generation,
                counts.get("documents"),
                counts.get("chunks"),
                served,
            )
            return retriever.index.generation != served
