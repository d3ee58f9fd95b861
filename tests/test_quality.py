"""Garbled text layers are reported (``qa ingest``, ``GET /v1/documents``), not indexed silently.

The garbled PDF is what reportlab makes by default: MSung-Light under the Simplified
``UniGB-UCS2-H`` CMap, so the text layer holds other characters than the page shows. It is
registered here under its own name, so ``test_formats``'s correctly mapped MSung-Light is not
replaced.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CHAPTER, CORPUS
from fastapi.testclient import TestClient
from reportlab.pdfbase import cidfonts, pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from api import create_app
from cli import main
from qa.config import Settings
from qa.embed.hashing import HashingEmbedder
from qa.index import current_generation, load_index
from qa.ingest import read_document
from qa.ingest.quality import MIN_PAIRS, known_pair_share, text_layer_warnings

GARBLING_FONT = "MSung-Light-GB"
LINES = (
    "日本在重稀土的進口來源中對中國的依賴度接近百分之百，",
    "意味著中國的任何政策調整，都可能對日本科技與製造業",
    "造成直接衝擊。經濟產業省因此推動南鳥島海底泥的試採。",
)


@pytest.fixture(scope="module", autouse=True)
def garbling_font() -> None:
    font = cidfonts.UnicodeCIDFont("MSung-Light")  # reportlab's default CMap: UniGB-UCS2-H
    font.name = font.fontName = GARBLING_FONT
    pdfmetrics.registerFont(font)


def garbled_pdf(path: Path, title: str | None = None) -> Path:
    canvas = Canvas(str(path))
    if title:
        canvas.setTitle(title)
    canvas.setFont(GARBLING_FONT, 12)
    for number, line in enumerate(LINES):
        canvas.drawString(72, 750 - 16 * number, line)
    canvas.showPage()
    canvas.save()
    return path


# --- the detector ------------------------------------------------------------------------------


def test_prose_passes_and_wrong_cmap_characters_do_not(tmp_path: Path) -> None:
    chapter = (CORPUS / f"{CHAPTER}.txt").read_text("utf-8")
    share, pairs = known_pair_share(chapter)
    assert pairs > 5000 and share > 0.45
    assert text_layer_warnings(chapter) == ()
    garbled = read_document(garbled_pdf(tmp_path / "g.pdf"), tmp_path)
    assert "日本" not in garbled.text  # what the page shows is not what was extracted
    share, pairs = known_pair_share(garbled.text)
    assert pairs >= MIN_PAIRS and share < 0.05
    assert any(w.startswith("garbled text layer") for w in garbled.warnings)


def test_japanese_and_short_text_pass() -> None:
    japanese = (
        "日本政府はレアアースの調達先を多様化する。南鳥島沖の海底泥の試掘は二〇二六年に始まる。"
        "経済安全保障推進法に基づき、政府は特定重要物資の安定供給確保を支援している。"
        "経済産業省は重要鉱物の備蓄と製錬能力の強化に向けた予算を計上した。"
        "防衛省は造船産業の基盤維持を安全保障上の課題と位置付けている。"
    )
    share, pairs = known_pair_share(japanese)
    assert pairs >= MIN_PAIRS and share > 0.3
    assert text_layer_warnings(japanese) == ()
    assert text_layer_warnings("嫂棱咽") == ()  # too few pairs to judge


def test_replacement_private_use_and_unmapped_glyphs() -> None:
    text = "日本對中國的稀土依賴很高。" * 10
    assert text_layer_warnings(text + "\ufffd") == ()  # one odd character is not a broken font
    (replacement,) = text_layer_warnings(text + "\ufffd" * 10)
    assert "replacement or private-use" in replacement
    (private,) = text_layer_warnings(text + "\ue000\ue001\ue002\ue003\ue004\ue005")
    assert "replacement or private-use" in private
    (unmapped,) = text_layer_warnings(text, unmapped=20)
    assert unmapped.startswith("20 of 150 glyphs have no Unicode mapping")


# --- reported where a user looks -----------------------------------------------------------------


def test_garbled_pdf_is_reported_by_ingest_and_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    garbled_pdf(root / "scan.pdf", title="日本重稀土供應鏈")
    (root / "note.txt").write_text("第一章 稀土\n\n日本的稀土依賴很高。\n", "utf-8")
    index_dir = tmp_path / "index"
    monkeypatch.setenv("QA_EMBED_MODEL", "hash:64")
    monkeypatch.setenv("QA_THREADS", "2")
    assert main(["ingest", str(root), "--index", str(index_dir), "--quiet"]) == 0
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert warned and all("/corpus/scan.pdf: " in line for line in warned)
    assert any("garbled text layer" in line for line in warned)

    documents = load_index(index_dir, model_id="hash:64", dimension=64).documents
    assert documents["scan"].warnings and documents["note"].warnings == ()
    assert documents["scan"].title == "日本重稀土供應鏈"  # the metadata title, not body text
    generation = current_generation(index_dir)
    assert generation is not None
    stored = (generation / "documents.jsonl").read_text("utf-8")
    assert all("warnings" in json.loads(line) for line in stored.splitlines())

    settings = Settings(corpus_dir=root, index_dir=index_dir, embed_model="hash:64")
    with TestClient(create_app(settings, embedder=HashingEmbedder(64))) as client:
        listed = {d["doc_id"]: d for d in client.get("/v1/documents").json()["data"]}
        assert listed["scan"]["warnings"] == list(documents["scan"].warnings)
        assert listed["note"]["warnings"] == []
        detail = client.get("/v1/documents/scan").json()
        assert detail["warnings"] == listed["scan"]["warnings"]
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert "warnings" in schema["DocumentSummary"]["properties"]
