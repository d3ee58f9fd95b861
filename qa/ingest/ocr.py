"""OCR of PDF pages that have no text layer (scans): pypdfium2 renders, RapidOCR reads.

``rapidocr-onnxruntime`` ships PaddleOCR's PP-OCRv4 detection and Chinese/English recognition
models inside its wheel and runs them with onnxruntime on the CPU: nothing is downloaded at
run time. The recogniser's alphabet (6,623 characters) is Chinese, Latin letters, digits and
punctuation: it lacks some Traditional characters (鏈 and 採 among them: they come out as
nothing or a look-alike) and has 5 kana, so Japanese scans need PaddleOCR's Japanese model,
which the wheel does not ship.

A page is rendered at ``SCALE`` times 72 dpi (144 dpi); every line found comes back with its
box and its confidence, and lines below ``MIN_CONFIDENCE`` are dropped as noise (specks,
stamps).

The line-angle classifier is not run: it is for photographs of text at any angle, and on
upright scanned pages it turned about one English line in five upside down, which then read as
nothing ("ea", "on"); without it every line of the measured pages was read (and faster).

Lines are grouped into paragraphs as a text layer's boxes would be: a line starts a new one
when the gap above it is more than ``PARAGRAPH_GAP`` of its height. Boxes are in PDF points
from the page's top-left corner, so they can be drawn over a render of the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

SCALE = 2.0
MIN_CONFIDENCE = 0.5
PARAGRAPH_GAP = 0.8
EDGE_BAND = 0.08  # top/bottom share of the page where running heads and folios live


Rect = tuple[float, float, float, float]  # x0, top, x1, bottom


@dataclass(frozen=True)
class OcrLine:
    """One recognised line: its text and box (x0, top, x1, bottom in points from top-left)."""

    text: str
    box: Rect
    confidence: float


@dataclass(frozen=True)
class OcrParagraph:
    lines: tuple[OcrLine, ...]
    edge: bool  # at the top or bottom of its page


@lru_cache(maxsize=1)
def _engine() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()


def available() -> bool:
    """Are the OCR libraries installed (the optional ``ocr`` extra)?"""
    try:
        import pypdfium2  # noqa: F401
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def ocr_pages(raw: bytes, pages: list[int]) -> dict[int, list[OcrParagraph]]:
    """The paragraphs OCR reads on each of ``pages`` (1-based) of the PDF in ``raw``."""
    import pypdfium2

    found: dict[int, list[OcrParagraph]] = {}
    pdf = pypdfium2.PdfDocument(raw)
    try:
        for number in pages:
            page = pdf[number - 1]
            try:
                height = page.get_height()
                image = page.render(scale=SCALE).to_pil().convert("RGB")
            finally:
                page.close()
            found[number] = paragraphs(read_image(image), height)
    finally:
        pdf.close()
    return found


def read_image(image: Any, scale: float = SCALE) -> list[OcrLine]:
    """The lines RapidOCR reads in ``image`` (rendered at ``scale``; boxes divided by it), top
    to bottom."""
    result, _ = _engine()(image, use_cls=False)
    lines: list[OcrLine] = []
    for points, text, confidence in result or ():
        xs = [float(x) / scale for x, _ in points]
        ys = [float(y) / scale for _, y in points]
        text = " ".join(str(text).split())
        if text and float(confidence) >= MIN_CONFIDENCE:
            lines.append(OcrLine(text, (min(xs), min(ys), max(xs), max(ys)), float(confidence)))
    return sorted(lines, key=lambda line: (round(line.box[1]), line.box[0]))


def paragraphs(lines: list[OcrLine], page_height: float) -> list[OcrParagraph]:
    """Lines grouped into paragraphs by the vertical gap between them."""
    groups: list[list[OcrLine]] = []
    for line in lines:
        if groups:
            last = groups[-1][-1]
            height = max(last.box[3] - last.box[1], 1.0)
            if line.box[1] - last.box[3] <= PARAGRAPH_GAP * height:
                groups[-1].append(line)
                continue
        groups.append([line])
    band = page_height * EDGE_BAND
    return [
        OcrParagraph(
            tuple(group),
            edge=group[0].box[1] <= band or group[-1].box[3] >= page_height - band,
        )
        for group in groups
    ]
