"""qa.lexicon (katakana words paired with Chinese words through footnotes) and the kana terms
a Japanese question leaves out of its lexical query, on hand-built documents and corpora."""

from __future__ import annotations

from pathlib import Path

from qa.config import Settings
from qa.crosslingual import Expander
from qa.embed.hashing import HashingEmbedder
from qa.lexical import analyze
from qa.lexicon import Lexicon, citing_sentence, mine_lexicon
from qa.retrieve import RetrievalSettings
from qa.service import ingest, open_retriever
from qa.types import Document, Footnote

# Two body sentences cite Japanese titles about レアアース; both say 稀土, and only one of them
# says 磁鐵 or 海底. A third cites a title about スチール.
BODY = "日本持續擴大稀土儲備以降低依賴。¹日本研究海底稀土與磁鐵回收。²日鐵完成併購以強化鋼鐵產能。³"
NOTES = (
    "〈レアアース備蓄を拡大〉，《日本經濟新聞》。",
    "〈海底のレアアース泥を探査〉，《日本經濟新聞》。",
    "〈日本製鉄、USスチール買収〉，《日本經濟新聞》。",
)


def _document() -> Document:
    text = BODY + "\n\n" + "\n".join(f"{n} {t}" for n, t in enumerate(NOTES, start=1))
    markers, footnotes = [], []
    for n, mark in enumerate("¹²³", start=1):
        markers.append((text.index(mark), n))
        line = f"{n} {NOTES[n - 1]}"
        start = text.index(line)
        footnotes.append(Footnote(n, line, (), (), start, start + len(line)))
    return Document(
        doc_id="d",
        title="d",
        source_path="d.txt",
        text=text,
        content_hash="x",
        footnotes=tuple(footnotes),
        markers=tuple(markers),
    )


def test_the_citing_sentence_ends_at_its_marker() -> None:
    doc = _document()
    assert citing_sentence(doc, doc.markers[1][0]) == "日本研究海底稀土與磁鐵回收"


def test_a_katakana_word_is_paired_with_the_word_its_citing_sentences_share() -> None:
    lexicon = mine_lexicon([_document()])
    # 稀土 and 日本 each appear in both sentences citing a レアアース title; 稀土 is cited by
    # fewer notes (2 against 3), so it is the more specific word and wins the tie.
    assert lexicon.katakana["レアアース"] == "稀土"
    # One footnote is not evidence: スチール (one title) gets no word; 海底, 磁鐵 (one
    # sentence each) are not chosen for レアアース.
    assert "スチール" not in lexicon.katakana


def test_a_japanese_question_gets_the_chinese_word_of_its_katakana() -> None:
    vocab = frozenset(analyze(BODY))
    expander = Expander(vocab, lexicon=Lexicon({"レアアース": "稀土"}))
    assert "稀土" in expander.expand("レアアースの備蓄はどうなった？")
    # Not for an English question, nor without the lexicon.
    assert "稀土" not in Expander(vocab).expand("レアアースの備蓄はどうなった？")
    assert "稀土" not in expander.expand("What about reserves?")


def _corpus(root: Path) -> Path:
    corpus = root / "corpus"
    corpus.mkdir()
    # A Chinese passage that answers, and a Japanese footnote-like passage that shares only
    # kana with the question.
    # The Chinese text is most of the corpus, so the corpus reads as Chinese (``corpus_script``).
    (corpus / "zh.txt").write_text(
        "日本研究海底稀土泥的開採技術，預計明年試採。政府編列預算支持相關研究，"
        "並與大學及企業合作建立示範產線。專家指出，若能穩定量產，將降低對單一國家的依賴，"
        "同時帶動國內材料產業的發展與升級，對經濟安全具有長遠意義。\n",
        "utf-8",
    )
    (corpus / "ja.txt").write_text("〈レアアースはどこにあるのか、それはなぜなのか〉。\n", "utf-8")
    return corpus


def test_kana_terms_stay_out_of_a_japanese_questions_lexical_query(tmp_path: Path) -> None:
    settings = Settings(corpus_dir=_corpus(tmp_path), index_dir=tmp_path / "index", threads=1)
    embedder = HashingEmbedder(64)
    ingest(settings, embedder=embedder)
    question = "海底のレアアースの泥はどこにあるのか？"
    retriever = open_retriever(settings, embedder)
    hits = retriever.search(question, mode="lexical", top_k=2).hits
    assert [h.citation.doc_id for h in hits] == ["zh"]  # the kana-only passage is not matched
    # With kana terms (a corpus written in Japanese), the Japanese passage matches and leads.
    kana = open_retriever(settings, embedder, RetrievalSettings().with_(kana_terms=True))
    hits = kana.search(question, mode="lexical", top_k=2).hits
    assert hits[0].citation.doc_id == "ja"
    # An English or Chinese question keeps all of its terms.
    assert retriever.search("海底稀土泥", mode="lexical").hits[0].citation.doc_id == "zh"
