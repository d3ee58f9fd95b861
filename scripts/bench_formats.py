"""Ingest rate of each format: files made here with the libraries people make them with, then
read (parsed into a ``Document``, no embedding) the way ``qa ingest`` reads them.

Usage: .venv/bin/python scripts/bench_formats.py [--repeat 3]

Prints one line per format: the file's size, the canonical text's characters, and the best of
``--repeat`` reads in milliseconds, files/s and characters/s. Everything is written to a
temporary folder and removed after.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from qa.ingest import read_document

PARAGRAPH = (
    "Japan depends on China for heavy rare earths, and the mud around Minamitorishima holds "
    "enough to change that if the trial in 2028 succeeds. "
)
ZH = "日本對中國重稀土的依賴很高，南鳥島周邊海底泥含有大量稀土，政府計畫於二〇二八年前開始試採。"
CITIES = ["Taipei", "Kaohsiung", "Taichung", "Tainan", "Keelung", "Hsinchu"]


def _rows(n: int) -> list[list[str]]:
    return [["City", "Year", "Output (kt)", "Exports (kt)"]] + [
        [CITIES[i % len(CITIES)], str(2000 + i % 26), f"{1000 + 7 * i:,}", str(300 + i)]
        for i in range(n)
    ]


def make_docx(path: Path) -> None:
    import docx

    word = docx.Document()
    for chapter in range(10):
        word.add_heading(f"Chapter {chapter + 1}", level=1)
        for _ in range(10):
            word.add_paragraph(PARAGRAPH * 3)
    rows = _rows(200)
    table = word.add_table(rows=len(rows), cols=4)
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            table.cell(r, c).text = value
    word.save(str(path))


def make_pptx(path: Path) -> None:
    import pptx

    deck = pptx.Presentation()
    for number in range(40):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide title {number + 1}"
        slide.placeholders[1].text_frame.text = PARAGRAPH
        slide.notes_slide.notes_text_frame.text = PARAGRAPH
    deck.save(str(path))


def make_xlsx(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for values in _rows(5000):
        sheet.append(values)
    book.save(str(path))


def make_csv(path: Path) -> None:
    path.write_text("\n".join(",".join(f'"{v}"' for v in row) for row in _rows(5000)), "utf-8")


def make_big5(path: Path) -> None:
    text = "第一章 稀土\n\n" + "\n".join(ZH.replace("〇", "零") for _ in range(500))
    path.write_bytes(text.encode("big5"))


def make_epub(path: Path) -> None:
    chapters = [
        f"<html><body><h1>Chapter {n}</h1>{('<p>' + PARAGRAPH * 3 + '</p>') * 10}</body></html>"
        for n in range(20)
    ]
    items = "".join(
        f'<item id="c{n}" href="c{n}.xhtml" media-type="application/xhtml+xml"/>' for n in range(20)
    )
    spine = "".join(f'<itemref idref="c{n}"/>' for n in range(20))
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("mimetype", "application/epub+zip")
        book.writestr(
            "META-INF/container.xml",
            '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="content.opf"/></rootfiles></container>',
        )
        book.writestr(
            "content.opf",
            f'<package xmlns="http://www.idpf.org/2007/opf"><manifest>{items}</manifest>'
            f"<spine>{spine}</spine></package>",
        )
        for n, chapter in enumerate(chapters):
            book.writestr(f"c{n}.xhtml", chapter)


FORMATS: dict[str, Callable[[Path], None]] = {
    "report.docx": make_docx,
    "deck.pptx": make_pptx,
    "figures.xlsx": make_xlsx,
    "figures.csv": make_csv,
    "book.epub": make_epub,
    "big5.txt": make_big5,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name, make in FORMATS.items():
            path = root / name
            make(path)
            best = float("inf")
            chars = 0
            for _ in range(args.repeat):
                start = time.perf_counter()
                document = read_document(path, root)
                best = min(best, time.perf_counter() - start)
                chars = len(document.text)
            print(
                f"{name:14} {path.stat().st_size / 1024:8.0f} KiB {chars:8d} chars "
                f"{best * 1000:8.0f} ms  {1 / best:7.2f} files/s  {chars / best:10.0f} chars/s"
            )


if __name__ == "__main__":
    main()
