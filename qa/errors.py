"""Domain errors raised by the library and mapped to HTTP once, in ``api/``.

QAError
├── ConfigError             a QA_* setting or option has an unusable value
├── DocumentParseError      a source file cannot be read or decoded
├── DependencyMissingError  an optional package is not installed (message has the pip command)
├── IndexNotFoundError      no built index where one was expected
├── IndexMismatchError      the index was built with another model, dimension or schema
├── IndexCorruptError       the index files are unreadable or inconsistent
├── IndexLockedError        another build holds the index directory
├── BackendUnavailableError the index's store (a Milvus server) cannot be reached or failed
├── DistributedError        the Ray cluster of `qa ingest --ray` cannot be reached or failed
├── DocumentNotFoundError   an unknown doc_id was requested
├── InvalidQueryError       a question or option the retriever cannot serve
└── UpstreamError           the model server (QA_LLM_BASE_URL) failed or answered garbage
    └── UpstreamTimeoutError    it did not connect or answer within QA_LLM_TIMEOUT
"""

from __future__ import annotations


class QAError(Exception):
    """Base class of every error the library raises on purpose."""


class ConfigError(QAError):
    pass


class DocumentParseError(QAError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot ingest {path}: {reason}")
        self.path = path
        self.reason = reason


class DependencyMissingError(QAError):
    pass


class IndexNotFoundError(QAError):
    pass


class IndexMismatchError(QAError):
    pass


class IndexCorruptError(QAError):
    pass


class IndexLockedError(QAError):
    pass


class BackendUnavailableError(QAError):
    """The store holding the index (``QA_BACKEND=milvus``) did not answer or failed: ``uri`` is
    where it was looked for, ``reason`` what happened."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"index store {uri}: {reason}")
        self.uri = uri
        self.reason = reason


class DistributedError(QAError):
    """``qa ingest --ray``: the cluster cannot be reached, or its workers failed for good."""


class DocumentNotFoundError(QAError):
    def __init__(self, doc_id: str) -> None:
        super().__init__(f"no document with doc_id {doc_id!r} in the index")
        self.doc_id = doc_id


class InvalidQueryError(QAError):
    pass


class UpstreamError(QAError):
    """The model server failed: ``server`` is its base URL (never the API key), ``reason`` what
    happened (connection refused, HTTP 500 and its message, a reply that is not JSON...)."""

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"model server {server}: {reason}")
        self.server = server
        self.reason = reason


class UpstreamTimeoutError(UpstreamError):
    pass
