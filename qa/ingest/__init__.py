"""Ingestion: source files -> ``Document`` with a canonical text, title and section headings.

One reader per format lives beside this module; ``read_document`` picks it by suffix. The PDF,
Office (.docx, .pptx, .xlsx, .odt) and e-book readers are imported on first use, so text and HTML
work even where their libraries are missing (the error then names the pip command).

A file under a folder whose suffix no reader knows is not read, but it is not passed over in
silence either: ``IngestReport.skipped`` names it with the reason, and ``qa ingest`` prints it.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from qa.errors import DependencyMissingError, DocumentParseError
from qa.ingest.html import read_html_document
from qa.ingest.text import read_text_document
from qa.types import Document

INGEST_VERSION = 5  # 5: HTML data tables read by rows (the text of such pages changed)
SUPPORTED_SUFFIXES = (
    ".txt",
    ".md",
    ".markdown",
    ".html",
    ".htm",
    ".pdf",
    ".docx",
    ".pptx",
    ".xlsx",
    ".csv",
    ".epub",
    ".odt",
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
)
# reader module, function, pip package: imported when a file of the suffix is read
_OPTIONAL_READERS: dict[str, tuple[str, str, str]] = {
    ".pdf": ("qa.ingest.pdf", "read_pdf_document", "pdfminer.six"),
    ".docx": ("qa.ingest.word", "read_docx_document", "python-docx"),
    ".pptx": ("qa.ingest.slides", "read_pptx_document", "python-pptx"),
    ".xlsx": ("qa.ingest.sheets", "read_xlsx_document", "openpyxl"),
    ".csv": ("qa.ingest.sheets", "read_csv_document", "openpyxl"),
    ".epub": ("qa.ingest.epub", "read_epub_document", "lxml"),
    ".odt": ("qa.ingest.odt", "read_odt_document", "lxml"),
    ".png": ("qa.ingest.images", "read_image_document", "pillow"),
    ".jpg": ("qa.ingest.images", "read_image_document", "pillow"),
    ".jpeg": ("qa.ingest.images", "read_image_document", "pillow"),
    ".tif": ("qa.ingest.images", "read_image_document", "pillow"),
    ".tiff": ("qa.ingest.images", "read_image_document", "pillow"),
}
# top-level module each pip package installs, to tell a missing dependency from another error
_MODULES = {
    "pdfminer.six": "pdfminer",
    "python-docx": "docx",
    "python-pptx": "pptx",
    "openpyxl": "openpyxl",
    "lxml": "lxml",
    "pillow": "PIL",
}


@dataclass(frozen=True)
class IngestReport:
    """``skipped``: files found under a folder in a format no reader knows, each with why."""

    documents: tuple[Document, ...]
    errors: tuple[DocumentParseError, ...]
    skipped: tuple[DocumentParseError, ...] = ()


def discover(paths: Iterable[Path]) -> Iterator[Path]:
    """Supported files under each path (recursively, sorted, hidden files skipped), once each."""
    seen: set[Path] = set()
    for found in _walk(paths):
        if found.resolve() not in seen:
            seen.add(found.resolve())
            yield found


def unsupported(paths: Iterable[Path]) -> list[DocumentParseError]:
    """Files under the folders in ``paths`` that no reader takes (hidden ones aside), each as
    the error saying so: reported by name, never skipped in silence."""
    found: list[DocumentParseError] = []
    for path in paths:
        if path.is_dir():
            for item in sorted(path.rglob("*")):
                rel = item.relative_to(path)
                if any(part.startswith(".") for part in rel.parts) or not item.is_file():
                    continue
                if item.suffix.lower() not in SUPPORTED_SUFFIXES:
                    found.append(DocumentParseError(str(item), _unsupported_reason()))
    return found


def _unsupported_reason() -> str:
    return f"unsupported file type, not read (supported: {', '.join(SUPPORTED_SUFFIXES)})"


def _walk(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                rel = found.relative_to(path)
                if any(part.startswith(".") for part in rel.parts):
                    continue
                if found.is_file() and found.suffix.lower() in SUPPORTED_SUFFIXES:
                    yield found
        elif path.exists():
            yield path
        else:
            raise DocumentParseError(str(path), "no such file or directory")


def doc_id_for(path: Path, root: Path) -> str:
    """Stable id: the path relative to the corpus root, suffix dropped, ``/``-separated."""
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        rel = Path(path.name)
    return rel.with_suffix("").as_posix()


def read_document(path: Path, root: Path) -> Document:
    return parse_source(read_source(path, root))


@dataclass(frozen=True)
class Source:
    """A file's bytes and names, read where the paths are; parsed anywhere (``parse_source``)."""

    path: str
    doc_id: str
    source_path: str
    raw: bytes


def read_source(path: Path, root: Path) -> Source:
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DocumentParseError(str(path), _unsupported_reason())
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentParseError(str(path), exc.strerror or str(exc)) from None
    return Source(str(path), doc_id_for(path, root), _display_path(path, root), raw)


def parse_source(source: Source) -> Document:
    """The document in ``source``: needs neither the file nor the corpus root."""
    raw, suffix = source.raw, Path(source.path).suffix.lower()
    names = {"doc_id": source.doc_id, "source_path": source.source_path}
    content_hash = hashlib.sha256(raw).hexdigest()
    if suffix in (".html", ".htm"):
        return read_html_document(raw, content_hash=content_hash, **names)
    if suffix in _OPTIONAL_READERS:
        return _reader(suffix)(raw, content_hash=content_hash, **names)
    return read_text_document(
        raw, content_hash=content_hash, markdown=suffix in (".md", ".markdown"), **names
    )


def read_each(
    paths: Iterable[Path], root: Path
) -> Iterator[tuple[Path, Document | DocumentParseError]]:
    """Each file read and parsed here, in order (``ReadFiles``)."""
    for path in paths:
        try:
            yield path, read_document(path, root)
        except DocumentParseError as exc:
            yield path, exc


# ``read(paths, root)``: each path with its document, or why it cannot be read, in the order of
# ``paths``. ``read_each`` reads them here; ``qa.distributed`` parses them on a Ray cluster.
ReadFiles = Callable[[Iterable[Path], Path], Iterator[tuple[Path, Document | DocumentParseError]]]


def _reader(suffix: str) -> Callable[..., Document]:
    """The reader of ``suffix``, imported now; a missing library is named with its pip command."""
    module_name, function, package = _OPTIONAL_READERS[suffix]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != _MODULES[package]:
            raise
        raise DependencyMissingError(
            f"reading {suffix} files needs {package}: pip install {package}"
        ) from None
    reader: Callable[..., Document] = getattr(module, function)
    return reader


def ingest_paths(
    paths: Iterable[Path],
    root: Path,
    *,
    strict: bool = False,
    read: ReadFiles | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> IngestReport:
    """Read every supported file; a bad file is reported (or raised when ``strict``). ``read``
    (default ``read_each``) says where the files are parsed; the outcome is the same.
    ``progress("reading", files read, files)`` follows it."""
    paths = list(paths)
    documents: dict[str, Document] = {}
    errors: list[DocumentParseError] = []
    files = list(discover(paths))
    for done, (path, result) in enumerate((read or read_each)(files, root), start=1):
        if progress is not None:
            progress("reading", done, len(files))
        try:
            if isinstance(result, DocumentParseError):
                raise result
            document = result
            if document.doc_id in documents:
                other = documents[document.doc_id].source_path
                raise DocumentParseError(
                    str(path), f"doc_id {document.doc_id!r} already used by {other}"
                )
        except DocumentParseError as exc:
            if strict:
                raise
            errors.append(exc)
            continue
        documents[document.doc_id] = document
    return IngestReport(tuple(documents.values()), tuple(errors), tuple(unsupported(paths)))


def _display_path(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve().parent).as_posix()
    except ValueError:
        return str(path)
