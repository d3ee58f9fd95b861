"""Scanned images (.png, .jpg/.jpeg, .tif/.tiff) read by OCR (``qa.ingest.ocr``).

Each frame of the image is a page (a multi-page TIFF is a scanned document; any other image
has one): Pillow decodes it, RapidOCR reads its lines, and they become paragraphs with their
page, grouped and joined as the PDF reader groups a scan's lines. Each line keeps its box
(``Document.boxes``) in the image's pixels from its top-left corner. Without the OCR libraries
the image is not read, and the error names the pip command; an image in which OCR finds no
text is an error too, never an empty document. Pillow's decompression-bomb limit applies, and
at most ``MAX_FRAMES`` frames are read.
"""

from __future__ import annotations

import io
from dataclasses import replace

from qa.errors import DocumentParseError
from qa.ingest import ocr
from qa.ingest.pdf import join_lines, scanned_boxes
from qa.ingest.structure import Paragraph, build_document
from qa.types import Document

MAX_FRAMES = 500


def read_image_document(
    raw: bytes, *, doc_id: str, source_path: str, content_hash: str
) -> Document:
    if not ocr.available():
        raise DocumentParseError(
            source_path,
            "an image is read by OCR, which needs rapidocr-onnxruntime and pypdfium2 "
            "(pip install rapidocr-onnxruntime pypdfium2)",
        )
    from PIL import Image, ImageSequence

    paragraphs: list[Paragraph] = []
    scanned: list[tuple[int, tuple[str, ...], tuple[ocr.Rect, ...]]] = []
    line = 1
    try:
        with Image.open(io.BytesIO(raw)) as image:
            for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
                if number > MAX_FRAMES:
                    break
                rgb = frame.convert("RGB")
                for paragraph in ocr.paragraphs(ocr.read_image(rgb, scale=1.0), rgb.height):
                    lines = tuple(item.text for item in paragraph.lines)
                    paragraphs.append(Paragraph(join_lines(lines), line, page=number))
                    scanned.append((line, lines, tuple(item.box for item in paragraph.lines)))
                    line += len(lines)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DocumentParseError(source_path, f"not a readable image ({exc})") from None
    if not paragraphs:
        raise DocumentParseError(source_path, "OCR found no text in the image")
    document = build_document(
        paragraphs,
        doc_id=doc_id,
        source_path=source_path,
        content_hash=content_hash,
        format="image",
        title_from_body=False,
    )
    return replace(
        document,
        warnings=("read by OCR (an image): recognition can err",),
        boxes=scanned_boxes(document, scanned),
    )
