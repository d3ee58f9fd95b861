"""Settings: every ``QA_*`` environment variable is read here, once, and passed in explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from qa.errors import ConfigError

DEFAULT_EMBED_MODEL = "use-multilingual-v3"
BACKENDS = ("local", "milvus")
MAX_WORKERS = 64


def available_cores() -> int:
    """Cores this process may run on (affinity-aware), never less than 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    # Where the served index lives (``qa.store``): "local" is the generation folder under
    # ``index_dir``; "milvus" is a set of Milvus collections behind the alias
    # ``milvus_collection`` at ``milvus_uri`` (a ``*.db`` path runs the embedded milvus-lite,
    # ``http://host:19530`` a Milvus server or cluster). ``qa ingest`` still builds in
    # ``index_dir`` first and then publishes the generation to Milvus.
    backend: str = "local"
    milvus_uri: str = ""
    milvus_collection: str = "qa"
    milvus_token: str | None = field(default=None, repr=False)
    milvus_timeout: float = 10.0  # seconds for any one call to Milvus
    embed_model: str = DEFAULT_EMBED_MODEL
    chunk_max_tokens: int = 256
    chunk_overlap_sentences: int = 1
    # Compute threads (BLAS, FAISS/OpenMP, torch), set in every thread that computes
    # (``qa.threads``). Answering a question uses ``threads`` per server worker process: one, so
    # that N workers or a busy neighbour never oversubscribe the cores. Embedding a corpus
    # (``qa ingest``, and the ingest ``qa serve`` runs first) uses ``ingest_threads``: every core.
    threads: int = 1
    ingest_threads: int = 1
    workers: int = 1  # ``qa serve`` processes, each loading the index and hot-reloading it
    host: str = "127.0.0.1"
    port: int = 8000
    gold_path: Path = Path("eval/gold.jsonl")
    api_keys: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    reload_interval: float = 2.0
    max_body_bytes: int = 64 * 1024
    # Generative answers (``qa.generate``): an OpenAI-compatible server, off when None.
    llm_base_url: str | None = None  # e.g. http://127.0.0.1:8080/v1
    llm_model: str = ""
    llm_api_key: str | None = field(default=None, repr=False)
    llm_timeout: float = 60.0  # seconds for the whole reply (between stream chunks when streaming)
    llm_connect_timeout: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            corpus_dir=Path(env.get("QA_CORPUS_DIR", "corpus")),
            index_dir=Path(env.get("QA_INDEX_DIR", "index")),
            backend=_backend(env),
            milvus_uri=_milvus_uri(env),
            milvus_collection=_collection_name(env),
            milvus_token=env.get("QA_MILVUS_TOKEN", "").strip() or None,
            milvus_timeout=_float(env, "QA_MILVUS_TIMEOUT", 10.0, low=0.1, high=600.0),
            embed_model=env.get("QA_EMBED_MODEL", DEFAULT_EMBED_MODEL).strip()
            or DEFAULT_EMBED_MODEL,
            chunk_max_tokens=_int(env, "QA_CHUNK_MAX_TOKENS", 256, low=16, high=8192),
            chunk_overlap_sentences=_int(env, "QA_CHUNK_OVERLAP_SENTENCES", 1, low=0, high=16),
            threads=_int(env, "QA_THREADS", 1, low=1, high=available_cores()),
            ingest_threads=_int(
                env, "QA_INGEST_THREADS", available_cores(), low=1, high=available_cores()
            ),
            workers=_int(env, "QA_WORKERS", 1, low=1, high=MAX_WORKERS),
            host=env.get("QA_HOST", "127.0.0.1"),
            port=_int(env, "QA_PORT", 8000, low=1, high=65535),
            gold_path=Path(env.get("QA_GOLD_PATH", "eval/gold.jsonl")),
            api_keys=_list(env, "QA_API_KEYS"),
            cors_origins=_list(env, "QA_CORS_ORIGINS"),
            reload_interval=_float(env, "QA_RELOAD_INTERVAL", 2.0, low=0.0, high=3600.0),
            llm_base_url=_url(env, "QA_LLM_BASE_URL"),
            llm_model=_llm_model(env),
            llm_api_key=env.get("QA_LLM_API_KEY", "").strip() or None,
            llm_timeout=_float(env, "QA_LLM_TIMEOUT", 60.0, low=0.1, high=3600.0),
            llm_connect_timeout=_float(env, "QA_LLM_CONNECT_TIMEOUT", 5.0, low=0.1, high=600.0),
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """These settings as the ``QA_*`` variables ``from_env`` reads back to equal settings:
        how ``qa serve --workers N`` hands what the command line resolved to the worker
        processes uvicorn spawns (each builds its app from ``from_env``)."""
        return {
            "QA_CORPUS_DIR": str(self.corpus_dir),
            "QA_INDEX_DIR": str(self.index_dir),
            "QA_BACKEND": self.backend,
            "QA_MILVUS_URI": self.milvus_uri,
            "QA_MILVUS_COLLECTION": self.milvus_collection,
            "QA_MILVUS_TOKEN": self.milvus_token or "",
            "QA_MILVUS_TIMEOUT": repr(self.milvus_timeout),
            "QA_EMBED_MODEL": self.embed_model,
            "QA_CHUNK_MAX_TOKENS": str(self.chunk_max_tokens),
            "QA_CHUNK_OVERLAP_SENTENCES": str(self.chunk_overlap_sentences),
            "QA_THREADS": str(self.threads),
            "QA_INGEST_THREADS": str(self.ingest_threads),
            "QA_WORKERS": str(self.workers),
            "QA_HOST": self.host,
            "QA_PORT": str(self.port),
            "QA_GOLD_PATH": str(self.gold_path),
            "QA_API_KEYS": ",".join(self.api_keys),
            "QA_CORS_ORIGINS": ",".join(self.cors_origins),
            "QA_RELOAD_INTERVAL": repr(self.reload_interval),
            "QA_LLM_BASE_URL": self.llm_base_url or "",
            "QA_LLM_MODEL": self.llm_model,
            "QA_LLM_API_KEY": self.llm_api_key or "",
            "QA_LLM_TIMEOUT": repr(self.llm_timeout),
            "QA_LLM_CONNECT_TIMEOUT": repr(self.llm_connect_timeout),
        }


def _backend(env: Mapping[str, str]) -> str:
    backend = env.get("QA_BACKEND", "").strip().lower() or "local"
    if backend not in BACKENDS:
        raise ConfigError(f"QA_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "milvus" and not env.get("QA_MILVUS_URI", "").strip():
        raise ConfigError(
            "QA_BACKEND=milvus needs QA_MILVUS_URI: a path ending in .db for the embedded "
            "milvus-lite (e.g. index/milvus.db), or http://host:19530 for a Milvus server"
        )
    return backend


def _milvus_uri(env: Mapping[str, str]) -> str:
    raw = env.get("QA_MILVUS_URI", "").strip()
    if not raw:
        return ""
    scheme = urlsplit(raw).scheme
    if scheme in ("http", "https", "tcp", "unix"):
        if scheme in ("http", "https", "tcp") and not urlsplit(raw).netloc:
            raise ConfigError(f"QA_MILVUS_URI={raw!r} has no host (e.g. http://host:19530)")
        return raw
    if scheme or not raw.endswith(".db"):
        raise ConfigError(
            f"QA_MILVUS_URI={raw!r} is neither a milvus-lite file (a path ending in .db) "
            "nor a server address (http://host:19530)"
        )
    return raw


def _collection_name(env: Mapping[str, str]) -> str:
    name = env.get("QA_MILVUS_COLLECTION", "").strip() or "qa"
    if not (name[0].isascii() and (name[0].isalpha() or name[0] == "_")) or not all(
        c.isascii() and (c.isalnum() or c == "_") for c in name
    ):
        raise ConfigError(
            f"QA_MILVUS_COLLECTION={name!r} is not a Milvus name "
            "(ASCII letters, digits and underscores, not starting with a digit)"
        )
    if len(name) > 160:
        raise ConfigError("QA_MILVUS_COLLECTION is longer than 160 characters")
    return name


def _url(env: Mapping[str, str], name: str) -> str | None:
    """An http(s) base URL without its trailing slash, or None when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{name}={raw!r} is not an http:// or https:// URL "
            "(an OpenAI-compatible base URL such as http://127.0.0.1:8080/v1)"
        )
    return raw.rstrip("/")


def _llm_model(env: Mapping[str, str]) -> str:
    model = env.get("QA_LLM_MODEL", "").strip()
    if env.get("QA_LLM_BASE_URL", "").strip() and not model:
        raise ConfigError(
            "QA_LLM_MODEL must name the model to ask when QA_LLM_BASE_URL is set "
            "(the name the server lists at GET <base URL>/models)"
        )
    return model


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def _float(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value
