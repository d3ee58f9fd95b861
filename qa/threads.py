"""Thread limits for the compute libraries, set in every thread that computes.

A limit set once at startup does not reach the threads that answer requests:

- OpenMP keeps its thread count per thread. ``omp_set_num_threads`` in the main thread leaves
  every other thread (uvicorn's event loop, anyio's worker threads that run sync endpoints) at
  the default, one OpenMP thread per core. FAISS and FAISS's own OpenBLAS (an OpenMP build)
  read it.
- NumPy's OpenBLAS (a pthreads build) keeps one count for the process.
- torch keeps its intra-op count for the process, and OpenMP's per thread under it.

So the limit is recorded for the process by ``configure(threads)`` and applied by ``apply()``
at the start of compute in any thread (the retriever's embed and dense search, the embedders'
``encode_*``). ``apply()`` sets the libraries once per thread and configuration (a thread-local
marker) and is an attribute check afterwards. Nothing is set before ``configure`` is called.
"""

from __future__ import annotations

import sys
import threading

from qa.errors import ConfigError

_lock = threading.Lock()
_configured: tuple[int, int] | None = None  # (version, threads); a new version reaches each thread
_local = threading.local()


def configure(threads: int) -> None:
    """Record ``threads`` as the limit of every compute library in this process and apply it in
    the calling thread; every other thread applies it at its next ``apply()``."""
    global _configured
    if threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}")
    with _lock:
        version = _configured[0] + 1 if _configured else 1
        _configured = (version, threads)
    apply()


def configured() -> int | None:
    """The limit ``configure`` recorded, or None when it was never called."""
    config = _configured
    return config[1] if config else None


def apply() -> None:
    """Set the configured limit in this thread unless it already holds it."""
    config = _configured
    if config is None or getattr(_local, "applied", None) == config:
        return
    _set(config[1])
    _local.applied = config


def _set(threads: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # every BLAS and OpenMP library loaded, as seen from here
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss is a hard dependency
        pass
    else:
        faiss.omp_set_num_threads(threads)  # its libgomp may not be the one threadpoolctl saw
    torch = sys.modules.get("torch")  # never imported here: only when a backend loaded it
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
