"""EPUB reader: the package (zip) opened with ``zipfile``, each chapter read as HTML.

``META-INF/container.xml`` names the package document (OPF); its spine lists the chapters
(XHTML files) in reading order, and each is read by the HTML reader (``html.html_paragraphs``:
scripts, styles and navigation dropped, h1-h6 kept as headings, footnote lists linked). A
chapter whose file has no heading is opened by one, its ``<title>`` or "Chapter N", so every
chapter is a section. The package XML is parsed with lxml without entity expansion, DTDs or
network access. Title, authors and date come from the package metadata (``dc:title``,
``dc:creator``, ``dc:date``). ``line`` is the line in the chapter files taken one after another
in spine order.
"""

from __future__ import annotations

import posixpath
import zipfile
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from qa.errors import DocumentParseError
from qa.ingest.html import decode_html, html_paragraphs
from qa.ingest.office import clean, meta_title, open_zip
from qa.ingest.structure import Paragraph, build_document
from qa.types import Document

_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_CHAPTER_TYPES = ("application/xhtml+xml", "text/html")


def read_epub_document(raw: bytes, *, doc_id: str, source_path: str, content_hash: str) -> Document:
    archive = open_zip(raw, source_path, "EPUB")
    package_path = _package_path(archive, source_path)
    package = parse_xml(_member(archive, package_path, source_path), source_path, package_path)
    base = posixpath.dirname(package_path)
    manifest = {
        item.get("id"): item
        for item in package.iter(_OPF + "item")
        if item.get("id") and item.get("href")
    }
    paragraphs: list[Paragraph] = []
    lines = 0
    chapters = 0
    for itemref in package.iter(_OPF + "itemref"):
        item = manifest.get(itemref.get("idref"))
        if item is None or item.get("media-type") not in _CHAPTER_TYPES:
            continue
        path = posixpath.normpath(posixpath.join(base, unquote(item.get("href", ""))))
        text = decode_html(_member(archive, path, source_path), f"{source_path}:{path}")
        found, title = html_paragraphs(text)
        if found:
            chapters += 1
            found = [replace(p, line=p.line + lines) for p in found]
            if not any(p.level for p in found):
                found.insert(0, Paragraph(title or f"Chapter {chapters}", found[0].line, level=1))
            paragraphs.extend(found)
        lines += text.count("\n") + 1
    if not paragraphs:
        raise DocumentParseError(source_path, "no text in any chapter of the EPUB")
    document = build_document(
        paragraphs,
        doc_id=doc_id,
        source_path=source_path,
        content_hash=content_hash,
        format="epub",
        title_from_body=False,
    )
    creators = tuple(
        dict.fromkeys(name for c in package.iter(_DC + "creator") if (name := clean(c.text or "")))
    )
    dates = [clean(d.text or "") for d in package.iter(_DC + "date")]
    titles = [meta_title(t.text or "") for t in package.iter(_DC + "title")]
    return replace(
        document,
        title=next((t for t in titles if t), "") or document.title,
        authors=creators or document.authors,
        date=next((d[:10] for d in dates if d[:4].isdigit()), None) or document.date,
    )


def _package_path(archive: zipfile.ZipFile, source: str) -> str:
    container = parse_xml(
        _member(archive, "META-INF/container.xml", source), source, "META-INF/container.xml"
    )
    for rootfile in container.iter(_CONTAINER + "rootfile"):
        if path := rootfile.get("full-path"):
            return unquote(path)
    raise DocumentParseError(source, "not a readable EPUB: container.xml names no package file")


def _member(archive: zipfile.ZipFile, name: str, source: str) -> bytes:
    try:
        return archive.read(name)
    except KeyError:
        raise DocumentParseError(source, f"not a readable EPUB: {name} is missing") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DocumentParseError(source, f"not a readable EPUB: {name}: {exc}") from None


def parse_xml(raw: bytes, source: str, name: str) -> Any:
    """XML of a package part, parsed without entity expansion, DTDs or network access."""
    from lxml import etree

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        return etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        raise DocumentParseError(source, f"{name} is not well-formed XML ({exc})") from None
