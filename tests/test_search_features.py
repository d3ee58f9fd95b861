"""Filters, context, de-duplication, per-signal scores and stage timings (library and API)."""

from __future__ import annotations

import json

import pytest
from conftest import CHAPTER, GOLD, NEWS, contract_backends
from fastapi.testclient import TestClient

from qa.answerable import MISSING_QUANTITY_CONFIDENCE, asked_quantities
from qa.answerable import quantity_in_passages as stated_in
from qa.errors import InvalidQueryError
from qa.retrieve import Retriever
from qa.types import Heading

STEEL = "第六章 川普 2.0 時代的日本製造業供應鏈安全重構 > 參、跨國併購與鋼鐵戰略自主"

# Every test here runs against the local store and the same index published to Milvus.
backend, client, corpus_retriever = contract_backends()


def test_doc_id_filter(corpus_retriever: Retriever) -> None:
    for doc_id in (CHAPTER, NEWS):
        result = corpus_retriever.search("稀土", top_k=10, doc_ids=[doc_id])
        assert result.hits and {h.citation.doc_id for h in result.hits} == {doc_id}
    with pytest.raises(InvalidQueryError, match="unknown doc_ids: nope"):
        corpus_retriever.search("稀土", doc_ids=["nope"])


def test_section_prefix_filter(corpus_retriever: Retriever) -> None:
    for mode in ("hybrid", "dense", "lexical"):
        result = corpus_retriever.search("稀土 出口管制", top_k=5, mode=mode, section_prefix=STEEL)
        assert result.hits, mode
        assert all(h.citation.section.startswith(STEEL) for h in result.hits), mode


def test_section_prefix_matches_a_heading_at_any_level(corpus_retriever: Retriever) -> None:
    """A prefix matches a heading at any level: 肆 finds 肆、軍民融合與造船產業布局."""
    result = corpus_retriever.search("造船", top_k=5, section_prefix="肆")
    assert result.hits
    assert all(h.citation.section.split(" > ")[1].startswith("肆、軍民融合") for h in result.hits)
    whole_path = corpus_retriever.search("造船", top_k=5, section_prefix="第六章")
    assert whole_path.hits and all(h.citation.section.startswith("第六章") for h in whole_path.hits)


@pytest.mark.parametrize("prefix", ["no such section", "柒、結論"])
def test_section_prefix_matching_nothing_is_an_error(
    corpus_retriever: Retriever, client: TestClient, prefix: str
) -> None:
    with pytest.raises(InvalidQueryError, match="matches no section") as info:
        corpus_retriever.search("稀土", section_prefix=prefix)
    assert "肆、軍民融合與造船產業布局" in str(info.value) or "陸、小結" in str(info.value)
    response = client.post("/v1/search", json={"question": "稀土", "section_prefix": prefix})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    detail = response.json()["detail"]
    assert prefix in detail and "sections include: " in detail
    listed = detail.split("sections include: ")[1].split("; ")
    assert 1 < len(listed) <= 6
    assert set(listed) <= {h.title for h in _headings(corpus_retriever)}
    with pytest.raises(InvalidQueryError, match="of the documents in doc_ids"):
        corpus_retriever.search("稀土", doc_ids=[NEWS], section_prefix="肆")


def _headings(retriever: Retriever) -> list[Heading]:
    return [h for d in retriever.index.documents.values() for h in d.headings]


def test_context_is_separate_and_exact(corpus_retriever: Retriever) -> None:
    result = corpus_retriever.search("日鐵收購美國鋼鐵", top_k=3, context=2)
    for hit in result.hits:
        document = corpus_retriever.document(hit.citation.doc_id)
        c, ctx = hit.citation, hit.context
        assert ctx is not None
        assert document.text[c.char_start : c.char_end] == hit.text
        assert document.text[ctx.before_start : ctx.after_end] == ctx.before + hit.text + ctx.after
        assert ctx.before or ctx.after
    without = corpus_retriever.search("日鐵收購美國鋼鐵", top_k=3)
    assert [h.text for h in without.hits] == [h.text for h in result.hits]
    assert all(h.context is None for h in without.hits)


def test_no_text_is_shown_twice(corpus_retriever: Retriever) -> None:
    for question in ("南鳥島 稀土泥", "日鐵 黃金股", "MASGA 造船", "製藥 供應鏈"):
        for mode in ("hybrid", "dense", "lexical"):
            hits = corpus_retriever.search(question, top_k=10, mode=mode).hits  # type: ignore[arg-type]
            spans = [(h.citation.doc_id, h.citation.char_start, h.citation.char_end) for h in hits]
            for i, (doc, start, end) in enumerate(spans):
                for other_doc, other_start, other_end in spans[i + 1 :]:
                    assert doc != other_doc or end <= other_start or other_end <= start
            assert len({h.text for h in hits}) == len(hits)


def test_timings_and_scores(corpus_retriever: Retriever) -> None:
    hybrid = corpus_retriever.search("日本稀土依賴", mode="hybrid")
    assert {"embed", "dense", "lexical", "fuse", "assemble", "total"} <= set(hybrid.timings_ms)
    assert hybrid.timings_ms["total"] >= hybrid.timings_ms["embed"] > 0
    assert all({"dense", "fused"} <= set(h.scores) for h in hybrid.hits)
    lexical = corpus_retriever.search("日本稀土依賴", mode="lexical")
    assert "embed" not in lexical.timings_ms and "lexical" in lexical.timings_ms


def test_api_filters_context_and_validation(client: TestClient) -> None:
    body = {"question": "稀土", "top_k": 3, "doc_ids": [NEWS], "context": 1}
    data = client.post("/v1/search", json=body).json()
    assert {h["citation"]["doc_id"] for h in data["hits"]} == {NEWS}
    for hit in data["hits"]:
        text = client.get(f"/v1/documents/{NEWS}").json()["text"]
        ctx = hit["context"]
        assert (
            text[ctx["before_start"] : ctx["after_end"]]
            == ctx["before"] + hit["text"] + ctx["after"]
        )
    section = client.post("/v1/search", json={"question": "稀土", "section_prefix": STEEL}).json()
    assert all(h["citation"]["section"].startswith(STEEL) for h in section["hits"])
    for bad, word in (
        ({"question": "稀土", "doc_ids": ["nope"]}, "unknown doc_ids"),
        ({"question": "稀土", "context": 11}, "context"),
        ({"question": "稀土", "context": -1}, "context"),
        ({"question": "稀土", "doc_ids": "not-a-list"}, "doc_ids"),
        ({"question": "稀土", "doc_ids": [""]}, "doc_ids"),
    ):
        response = client.post("/v1/search", json=bad)
        assert response.status_code == 422, bad
        assert word in response.json()["detail"], response.json()


def test_off_topic_questions_are_flagged_unanswerable(corpus_retriever: Retriever) -> None:
    for question in (
        "How long should sourdough bread proof at room temperature?",
        "世界盃足球賽冠軍是哪一隊？",
    ):
        result = corpus_retriever.search(question)
        assert result.answerable is False and result.confidence < 0.5, question
        assert result.hits  # the passages are still returned, only flagged
        off_topic = result.confidence
        for on_topic in (
            "日本重稀土進口對中國的依賴度有多高？",
            "How much did Nippon Steel pay for U.S. Steel?",
        ):
            found = corpus_retriever.search(on_topic)
            assert found.answerable is True, on_topic
            assert found.confidence > off_topic, (on_topic, question)


def test_questions_asking_for_an_unstated_quantity_are_flagged(
    corpus_retriever: Retriever,
) -> None:
    """Near misses the scores alone pass: on-topic, but the corpus states no such number."""
    for question in (
        "How many tonnes of steel did U.S. Steel produce in 2024?",
        "三菱重工的造船廠每年能建造多少噸位的船舶？",
    ):
        result = corpus_retriever.search(question)
        assert result.answerable is False, question
        assert result.confidence == pytest.approx(MISSING_QUANTITY_CONFIDENCE), question
        assert result.unstated_quantities == ("tonnage",), question
    for question in (  # the same kinds of question, where the corpus does state the number
        "南鳥島周邊海底的稀土儲量估計有多少噸？",
        "日本製鐵收購美國鋼鐵花了多少美元？",
        "2010年以前日本的稀土有多少比例仰賴中國？",
    ):
        result = corpus_retriever.search(question)
        assert result.answerable is True, question
        assert result.confidence > MISSING_QUANTITY_CONFIDENCE, question
        assert result.unstated_quantities == (), question


def test_quantity_check_reads_the_passages_returned(corpus_retriever: Retriever) -> None:
    """The sum is stated in hit 5; a chunk overlapping hit 1 (dropped from the hits) used to
    fill the fifth place the check read, so the question was called unanswerable."""
    question = "日本制铁收购美国钢铁花了多少钱？"
    five = corpus_retriever.search(question, top_k=5)
    assert any("141 億美元" in hit.text for hit in five.hits)
    assert five.answerable is True and five.unstated_quantities == ()
    for top_k in (1, 3, 10):  # the verdict reads the first five hits whatever top_k is
        result = corpus_retriever.search(question, top_k=top_k)
        assert [h.text for h in result.hits][:5] == [h.text for h in five.hits][:top_k]
        assert (result.answerable, result.unstated_quantities) == (True, ())


def test_quantity_verdict_is_the_returned_passages_verdict(corpus_retriever: Retriever) -> None:
    """For every gold question that asks for a quantity: unstated exactly when none of the five
    passages returned states one."""
    rows = [json.loads(line) for line in GOLD.read_text("utf-8").splitlines() if line.strip()]
    asking = [r["question"] for r in rows if asked_quantities(r["question"])]
    assert len(asking) >= 20
    for question in asking:
        result = corpus_retriever.search(question, top_k=5)
        stated = stated_in(asked_quantities(question), (h.text for h in result.hits))
        assert (result.unstated_quantities == ()) == stated, question


def test_api_says_which_quantity_is_unstated(client: TestClient) -> None:
    near_miss = client.post(
        "/v1/search", json={"question": "What was the price per tonne of lithium carbonate?"}
    )
    assert near_miss.status_code == 200
    body = near_miss.json()
    assert body["answerable"] is False and body["unstated_quantities"] == ["money"]
    stated = client.post("/v1/search", json={"question": "日本製鐵收購美國鋼鐵花了多少美元？"})
    assert stated.json()["answerable"] is True and stated.json()["unstated_quantities"] == []


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("How many metric tons of ore were shipped?", {"tonnage"}),
        ("What is the annual gross tonnage output of the yard?", {"tonnage"}),
        ("德国目前的稀土战略储备有多少吨？", {"tonnage"}),
        ("富山化学の生産能力は年間何トンか？", {"tonnage"}),
        ("How much did Nippon Steel pay for U.S. Steel?", {"money"}),
        ("What was the average market price of lithium carbonate per tonne?", {"money"}),
        ("2025 年日本政府撥給南鳥島開發多少預算？", {"money"}),
        ("日本预计损失多少？", {"money"}),
        ("造船所をいくらで買収したのか？", {"money"}),
        ("重稀土所占比例是多少？", {"percent"}),
        ("中国掌握了全球多大比例的造船产能？", {"percent"}),
        ("重レアアースの割合は？", {"percent"}),
        ("What share of global shipbuilding capacity does China hold?", {"percent"}),
        # mentioning a unit is not asking for it
        ("普特利奧如何減少重稀土使用比例？", set()),
        ("哪家公司的造船噸位最大？", set()),
        ("What caused the price increase?", set()),
        ("How much lithium did Japan import?", set()),  # a mass or a sum: ambiguous, not typed
        ("Did Washington and Tokyo set up a task force?", set()),  # "ton" inside a word
    ],
)
def test_asked_quantities(question: str, kinds: set[str]) -> None:
    assert {q.name for q in asked_quantities(question)} == kinds


def test_quantity_in_passages() -> None:
    def quantity_in_passages(question: str, passages: list[str]) -> bool | None:
        return stated_in(asked_quantities(question), passages)

    assert quantity_in_passages("Who leads the ministry?", ["no numbers"]) is None
    tonnes = "德国的稀土储备有多少吨？"
    assert quantity_in_passages(tonnes, ["每日 350 噸規模", "other"]) is True
    assert quantity_in_passages(tonnes, ["數萬噸"]) is True  # Chinese numerals
    assert quantity_in_passages(tonnes, ["水深 6000 公尺", "350 人"]) is False
    money = "造船所をいくらで買収したのか？"
    assert quantity_in_passages(money, ["總交易金額高達 141 億美元"]) is True
    assert quantity_in_passages(money, ["about US$14.1 billion"]) is True
    assert quantity_in_passages(money, ["1,319 億日圓"]) is True
    assert quantity_in_passages(money, ["2024 年收購美國費城造船廠"]) is False
    price_per_tonne = "What was the price of lithium per tonne?"  # any asked kind will do
    assert quantity_in_passages(price_per_tonne, ["每噸 8 萬元"]) is True
    share = "重稀土所占比例是多少？"
    assert quantity_in_passages(share, ["比例達 50%"]) is True
    assert quantity_in_passages(share, ["約九成"]) is True
    assert quantity_in_passages(share, ["比例很高"]) is False


def test_judge_thresholds() -> None:
    from qa.answerable import (
        COVERAGE_THRESHOLD,
        CROSS_SCRIPT_DENSE_THRESHOLDS,
        DENSE_THRESHOLDS,
        judge,
    )

    model = "use-multilingual-v3"
    same, cross = DENSE_THRESHOLDS[model], CROSS_SCRIPT_DENSE_THRESHOLDS[model]
    assert cross < same  # answered questions across scripts score lower
    assert judge(model, same, 0.0)[0] is True
    assert judge(model, same - 0.01, 0.0)[0] is False
    between = (same + cross) / 2
    assert judge(model, between, 0.0)[0] is False
    assert judge(model, between, 0.0, cross_script=True)[0] is True
    assert judge(model, cross - 0.01, 0.0, cross_script=True)[0] is False
    assert judge(model, 0.20, COVERAGE_THRESHOLD + 0.05)[0] is True
    assert judge("some-other-model", 0.01, 0.0)[0] is True  # uncalibrated: never flags on dense
    assert judge("some-other-model", None, 0.0)[0] is False  # lexical mode: coverage decides
    # confidence is a probability that grows with either signal
    assert 0.0 < judge(model, 0.3, 0.2)[1] < judge(model, 0.6, 0.2)[1] < 1.0
    assert judge(model, 0.3, 0.2)[1] < judge(model, 0.3, 0.6)[1]
    # a missing quantity overrides both signals; a stated one (or none asked) changes nothing
    assert judge(model, 0.9, 1.0, quantity_stated=False) == (False, MISSING_QUANTITY_CONFIDENCE)
    assert judge(model, 0.9, 1.0, True) == judge(model, 0.9, 1.0)
    assert judge(model, 0.2, 0.0, True)[0] is False
