"""citeqa: retrieval question answering over a document corpus with exact citation anchors."""

from qa.config import Settings
from qa.errors import QAError
from qa.retrieve import Retriever
from qa.types import Chunk, Citation, Document, Hit, SearchResult

__version__ = "0.1.0"  # the package version: pyproject reads it, the API and MCP server report it
__all__ = [
    "Chunk",
    "Citation",
    "Document",
    "Hit",
    "QAError",
    "Retriever",
    "SearchResult",
    "Settings",
]
