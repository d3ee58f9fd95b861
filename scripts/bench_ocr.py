"""OCR speed and accuracy on scanned pages made from known text (Traditional Chinese, English).

Usage: .venv/bin/python scripts/bench_ocr.py [--pages 4] [--dpi 150] [--size 12]

Pages are drawn with Pillow (WenQuanYi Micro Hei from the ``paperang-p2-fonts-cjk`` wheel, a
dev dependency) at ``--dpi`` and saved as an image-only PDF, exactly what a scanner gives; the
PDF reader then reads them through OCR (``qa.ingest.ocr``). The Chinese text is the bundled
chapter (``corpus/indsr-…``), the English text this repository's README prose. Prints pages/s
(the whole read: render, detect, recognise, structure) and the character error rate: the edit
distance between the text read and the text drawn over the drawn text's length, with
whitespace removed on both sides (a separate figure keeps the spaces for English).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import textwrap
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "corpus" / "indsr-2025-ch6-japan-supply-chain-security.txt"


def font_path() -> str:
    import paperang_p2_fonts_cjk

    return str(Path(paperang_p2_fonts_cjk.__file__).parent / "fonts" / "wqy-microhei.ttc")


def zh_lines(width: int) -> list[str]:
    text = CHAPTER.read_text("utf-8")
    body = [p.strip() for p in text.split("\n") if len(p.strip()) > 60 and "http" not in p]
    return [line for p in body[2:] for line in textwrap.wrap(p, width)]


def en_lines(width: int) -> list[str]:
    text = (ROOT / "README.md").read_text("utf-8")
    prose = [
        line.strip()
        for line in text.split("\n")
        if len(line.strip()) > 60 and re.fullmatch(r"[A-Za-z0-9 ,.;:()'\"-]+", line.strip())
    ]
    return textwrap.wrap(" ".join(prose), width)


def draw_pages(lines: list[str], pages: int, dpi: int, size: int) -> tuple[list[object], str]:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path(), round(size * dpi / 72))
    step = round(size * dpi / 72 * 1.7)
    per_page = int((11.69 - 2.4) * dpi) // step
    images: list[object] = []
    drawn: list[str] = []
    for number in range(pages):
        image = Image.new("RGB", (int(8.27 * dpi), int(11.69 * dpi)), "white")
        pen = ImageDraw.Draw(image)
        chunk = lines[number * per_page : (number + 1) * per_page]
        for row, line in enumerate(chunk):
            pen.text((int(1.0 * dpi), int(1.2 * dpi) + row * step), line, fill="black", font=font)
        drawn.extend(chunk)
        images.append(image)
    return images, "\n".join(drawn)


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(read: str, truth: str, *, spaces: bool) -> float:
    def norm(text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        return " ".join(text.split()) if spaces else "".join(text.split())

    return edit_distance(norm(read), norm(truth)) / max(len(norm(truth)), 1)


def main() -> None:
    from qa.ingest import ocr, read_document

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--dpi", type=int, default=150)
    parser.add_argument("--size", type=int, default=12, help="font size in points")
    args = parser.parse_args()
    ocr._engine()  # load the models first: a one-off cost, not a page's
    with tempfile.TemporaryDirectory() as folder:
        for name, lines in (("zh-Hant", zh_lines(36)), ("en", en_lines(80))):
            images, truth = draw_pages(lines, args.pages, args.dpi, args.size)
            path = Path(folder) / f"{name}.pdf"
            first, *rest = images
            first.save(path, "PDF", resolution=args.dpi, save_all=True, append_images=rest)  # type: ignore[attr-defined]
            start = time.perf_counter()
            document = read_document(path, Path(folder))
            seconds = time.perf_counter() - start
            line = (
                f"{name:8} {args.pages} pages at {args.dpi} dpi, {args.size} pt: "
                f"{args.pages / seconds:.2f} pages/s, {len(truth)} characters drawn, "
                f"CER {cer(document.text, truth, spaces=False):.4f} (whitespace ignored)"
            )
            if name == "en":
                line += f", {cer(document.text, truth, spaces=True):.4f} (spaces kept)"
            print(line)


if __name__ == "__main__":
    main()
