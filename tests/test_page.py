"""The research page (``GET /``) in a real browser: Debian's chromium driven by Playwright.

A ``qa serve --no-ingest`` subprocess on 127.0.0.1 serves the index ``corpus_retriever`` builds
from the two bundled documents. Every request the browser makes goes through a guard that aborts
(and records) anything not addressed to that server; every test ends by asserting that nothing
left the origin and that the console logged no error. Screenshots go to a pytest tmp dir.
Playwright's own browser download is never used (no ``playwright install``): without
``/usr/bin/chromium`` (``apt-get install -y chromium fonts-noto-cjk``, which scripts/test.sh
does when it runs as root) the module is skipped with that reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import CHAPTER, NEWS, ServerProcess

from qa.config import Settings
from qa.retrieve import Retriever

try:
    from playwright.sync_api import Browser, Page, Route, sync_playwright
except ImportError:  # pragma: no cover - playwright is in the dev extras
    sync_playwright = None

CHROMIUM = Path(os.environ.get("QA_CHROMIUM", "/usr/bin/chromium"))
CJK_FONTS = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        sync_playwright is None, reason="playwright is not installed: pip install -e '.[dev]'"
    ),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no browser at {CHROMIUM}: apt-get install -y chromium fonts-noto-cjk "
        "(scripts/test.sh does this when it runs as root)",
    ),
]

ZH_QUESTION = "日本重稀土對中國的依賴有多高？"
EN_QUESTION = "How dependent is Japan on China for heavy rare earths?"
OFF_TOPIC = "紅燒牛肉麵的湯頭通常要燉幾個小時才會入味？"  # gold g093: unanswerable
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
KEY = "page-test-key"
# Chromium logs every non-2xx response as a console error; tests that expect one allow it.
RESOURCE_ERROR = "Failed to load resource: the server responded with a status of"


# --- the server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def servers(
    corpus_settings: Settings, corpus_retriever: Retriever, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServerProcess]]:
    """Two servers of the same index, started together so that the second (with API keys) loads
    its model while the first one's tests run; both always terminated."""
    workdir = tmp_path_factory.mktemp("page-servers")
    started: dict[str, ServerProcess] = {}
    try:
        started["open"] = ServerProcess(corpus_settings.index_dir, workdir)
        started["keyed"] = ServerProcess(corpus_settings.index_dir, workdir, QA_API_KEYS=KEY)
        yield started
    finally:
        for live in started.values():
            live.stop()


@pytest.fixture(scope="module")
def server(servers: dict[str, ServerProcess]) -> str:
    return servers["open"].ready(timeout=120).url


@pytest.fixture
def keyed_server(servers: dict[str, ServerProcess]) -> str:
    return servers["keyed"].ready(timeout=120).url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


# --- a browser tab that watches its own traffic ----------------------------------------------


@dataclass
class Tab:
    page: Page
    origin: str
    requests: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    authorization: dict[str, str | None] = field(default_factory=dict)

    def goto(self, path: str) -> None:
        self.page.goto(f"{self.origin}{path}")

    def ask(self, question: str) -> None:
        """Type the question and press Enter, as a person would; wait for the passages."""
        self.page.fill("#q", question)
        self.page.press("#q", "Enter")
        self.page.wait_for_function(
            "q => document.getElementById('answer').dataset.question === q"
            " || !document.getElementById('error').hidden",
            arg=question,
        )
        self.wait_for_result()

    def wait_for_result(self) -> None:
        self.page.wait_for_selector("#passages:not([hidden]) li.hit, #error:not([hidden])")
        self.page.wait_for_function("() => !document.getElementById('ask-button').disabled")

    def hits(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.page.eval_on_selector_all(
            "#hits li.hit",
            """items => items.map(li => ({
                anchor: li.dataset.anchor,
                text: li.querySelector('.hit-text').textContent,
                sentence: [...li.querySelectorAll('mark.answer-sentence')].map(m => m.textContent),
                crumbs: [...li.querySelectorAll('.crumbs li')].map(x => x.textContent),
                closest: li.querySelector('.closest')?.textContent ?? null,
                lang: li.querySelector('.hit-text').lang,
                bars: li.querySelectorAll('.scores .bar').length,
            }))""",
        )
        return result

    def assert_clean(self, allow: tuple[str, ...] = ()) -> None:
        assert self.requests, "the page made no request at all"
        assert not self.foreign, f"requests left the origin: {self.foreign}"
        unexpected = [e for e in self.console_errors if not any(a in e for a in allow)]
        assert not unexpected, f"console errors: {unexpected}"


@pytest.fixture
def open_tab(browser: Browser) -> Iterator[Any]:
    """``open_tab(origin, viewport=LAPTOP)`` → a fresh context (no storage) and its tab."""
    contexts = []

    def make(origin: str, viewport: dict[str, int] = LAPTOP) -> Tab:
        context = browser.new_context(viewport=viewport, locale="en-US")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        tab = Tab(page, origin)

        def guard(route: Route) -> None:
            url = route.request.url
            if url == origin or url.startswith(origin + "/"):
                route.fallback()
            else:
                tab.foreign.append(url)
                route.abort()

        context.route("**/*", guard)

        def on_request(request: Any) -> None:
            tab.requests.append(request.url)
            if not (request.url == origin or request.url.startswith(origin + "/")):
                tab.foreign.append(request.url)
            tab.authorization[request.url] = request.headers.get("authorization")

        page.on("request", on_request)
        page.on(
            "console",
            lambda message: (
                tab.console_errors.append(message.text) if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: tab.console_errors.append(f"uncaught: {error}"))
        return tab

    yield make
    for context in contexts:
        context.close()


def _screenshot(page: Page, path: Path, *, full_page: bool = False) -> Path:
    page.screenshot(path=str(path), full_page=full_page)
    return path


def _assert_not_blank(path: Path) -> None:
    """A page with text on it has many colours and contrast; a blank or broken one does not."""
    from PIL import Image, ImageStat

    with Image.open(path) as image:
        grey = image.convert("L")
        assert ImageStat.Stat(grey).stddev[0] > 8, f"{path} is (nearly) one colour"
        assert len(grey.getcolors(maxcolors=256) or range(257)) > 16, f"{path} has no text"


def _save_small_png(source: Path, target: Path) -> None:
    """A copy in at most 256 colours: a page of text stays sharp at a fraction of the size."""
    from PIL import Image

    with Image.open(source) as image:
        image.convert("RGB").quantize(colors=256).save(target, optimize=True)


def _cjk_fonts_used(page: Page, selector: str) -> list[str]:
    """The font families Chromium actually drew the element's text with (DevTools protocol)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cdp.detach()
    return [f["familyName"] for f in fonts]


# --- asking ----------------------------------------------------------------------------------


def test_zh_hant_question_shows_answer_and_passages(
    server: str, open_tab: Any, shots: Path
) -> None:
    tab = open_tab(server)
    tab.goto("/")
    assert tab.page.title().startswith("citeqa")
    # Every form control is labelled.
    unlabelled = tab.page.eval_on_selector_all(
        "input, select, textarea",
        "els => els.filter(e => e.type !== 'hidden' && !e.labels?.length).map(e => e.id)",
    )
    assert not unlabelled, unlabelled
    tab.ask(ZH_QUESTION)

    assert tab.page.is_visible("#answer")
    assert tab.page.text_content("#answer-text").strip()
    assert tab.page.get_attribute("#answer", "data-answerable") == "true"
    hits = tab.hits()
    assert len(hits) == 5
    assert any("100%" in h["text"] for h in hits), [h["text"][:40] for h in hits]
    for hit in hits:
        assert hit["crumbs"] and hit["bars"] == 3 and hit["closest"] is None
    assert hits[0]["lang"] == "zh"
    # The rank-1 passage carries its footnotes, with the sources as links.
    links = tab.page.eval_on_selector_all(
        "#hits li.hit:first-child .notes a.source", "as => as.map(a => a.href)"
    )
    assert any(link.startswith("https://") for link in links)
    assert parse_qs(urlsplit(tab.page.url).query)["q"] == [ZH_QUESTION]
    if CJK_FONTS.exists():
        fonts = _cjk_fonts_used(tab.page, "#hits li.hit:first-child .hit-text")
        assert any("CJK TC" in f for f in fonts), fonts
    shot = _screenshot(tab.page, shots / "zh-hant-laptop.png")
    _assert_not_blank(shot)
    if target := os.environ.get("QA_PAGE_SCREENSHOT"):  # the README's picture, docs/page.png
        _save_small_png(shot, Path(target))
    tab.assert_clean()


def test_english_question_on_a_phone(server: str, open_tab: Any, shots: Path) -> None:
    tab = open_tab(server, PHONE)
    tab.goto("/")
    assert not tab.page.eval_on_selector("#filters-box", "d => d.open")  # folded on a phone
    tab.ask(EN_QUESTION)
    assert tab.page.text_content("#answer-text").strip()
    hits = tab.hits()
    assert len(hits) == 5
    assert any("稀土" in h["text"] for h in hits), [h["text"][:40] for h in hits]
    too_wide = tab.page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth)
            .map(e => `${e.tagName}.${e.className}: ${e.textContent.slice(0, 30)}`)"""
    )
    assert not too_wide, f"wider than a phone: {too_wide}"
    overflow = tab.page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than a phone"
    _assert_not_blank(_screenshot(tab.page, shots / "english-phone.png", full_page=True))
    tab.assert_clean()


def test_unanswerable_question_is_shown_as_such(server: str, open_tab: Any, shots: Path) -> None:
    tab = open_tab(server)
    tab.goto("/")
    tab.ask(OFF_TOPIC)
    assert tab.page.get_attribute("#answer", "data-answerable") == "false"
    assert "does not answer" in tab.page.text_content("#unanswerable")
    assert tab.page.text_content("#passages-heading") == "Closest passages"
    hits = tab.hits()
    assert hits and all(h["closest"] == "closest, not an answer" for h in hits)
    assert all(not h["sentence"] for h in hits)  # nothing highlighted as an answer
    _screenshot(tab.page, shots / "unanswerable.png")
    tab.assert_clean()


def test_a_filter_narrows_the_results(server: str, open_tab: Any) -> None:
    tab = open_tab(server)
    tab.goto("/")
    tab.page.fill("#top-k", "10")
    tab.ask("稀土")
    before = {h["anchor"].split("#")[0] for h in tab.hits()}
    assert before == {CHAPTER, NEWS}, before

    tab.page.check(f"#doc-filter input[value='{NEWS}']")
    tab.page.press("#q", "Enter")
    tab.page.wait_for_url("**doc=*")
    tab.page.wait_for_function(
        "id => [...document.querySelectorAll('#hits li.hit')].every("
        "li => li.dataset.anchor.startsWith(id + '#'))",
        arg=NEWS,
    )
    hits = tab.hits()
    assert hits and {h["anchor"].split("#")[0] for h in hits} == {NEWS}
    assert parse_qs(urlsplit(tab.page.url).query)["doc"] == [NEWS]

    # A section prefix, set through the URL, keeps only that section's passages.
    section = "第六章 川普 2.0 時代的日本製造業供應鏈安全重構 > 參、跨國併購與鋼鐵戰略自主"
    tab.goto("/?" + httpx.QueryParams({"q": "稀土", "section": section, "k": 3}).__str__())
    tab.wait_for_result()
    hits = tab.hits()
    assert len(hits) <= 3 and hits
    assert all(h["crumbs"][:2] == section.split(" > ") for h in hits), hits
    assert tab.page.input_value("#section") == section
    assert tab.page.input_value("#top-k") == "3"
    tab.assert_clean()


def test_the_shared_url_reproduces_the_result(server: str, open_tab: Any) -> None:
    first = open_tab(server)
    first.goto("/")
    first.ask(ZH_QUESTION)
    shared = first.page.url
    anchors = [h["anchor"] for h in first.hits()]
    answer = first.page.text_content("#answer-text")

    second = open_tab(server)  # another browser context: nothing cached, nothing stored
    second.page.goto(shared)
    second.wait_for_result()
    assert [h["anchor"] for h in second.hits()] == anchors
    assert second.page.text_content("#answer-text") == answer
    assert second.page.input_value("#q") == ZH_QUESTION
    timings = second.page.evaluate(
        """() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const answer = performance.getEntriesByName('citeqa:first-answer')[0];
            return {dom_content_loaded_ms: nav.domContentLoadedEventEnd,
                    load_ms: nav.loadEventEnd, first_answer_ms: answer.startTime};
        }"""
    )
    print("page timings (ms from navigation start):", json.dumps(timings))
    assert 0 < timings["load_ms"] < 5000 and 0 < timings["first_answer_ms"] < 10000, timings

    # A document view's URL, opened afresh, shows the same span and the same reference.
    best = first.hits()[0]["text"]
    first.page.click("#hits li.hit:first-child a.show-doc")
    first.page.wait_for_selector("#doc-text mark.cited")
    third = open_tab(server)
    third.page.goto(first.page.url)
    _check_document_view(third, server, best)
    assert third.page.text_content("#citation-text") == first.page.text_content("#citation-text")
    for tab in (first, second, third):
        tab.assert_clean()


def test_errors_are_shown_in_words(server: str, open_tab: Any) -> None:
    tab = open_tab(server)
    tab.goto("/?q=%E7%A8%80%E5%9C%9F&doc=no-such-document")
    tab.page.wait_for_selector("#error:not([hidden])")
    message = tab.page.text_content("#error")
    assert "unknown doc_ids: no-such-document" in message
    assert "{" not in message and '"detail"' not in message
    assert tab.page.is_hidden("#passages")
    tab.page.fill("#q", "   ")
    tab.page.press("#q", "Enter")
    assert tab.page.text_content("#error") == "Type a question first."
    tab.goto("/?view=document&open=no-such-document&span=0-5")
    tab.page.wait_for_selector("#error:not([hidden])")
    assert tab.page.text_content("#error").startswith("Document not found")
    tab.goto(f"/?view=document&open={NEWS}&span=5-999999")
    tab.page.wait_for_selector("#error:not([hidden])")
    assert "not in the document" in tab.page.text_content("#error")
    tab.assert_clean(allow=(f"{RESOURCE_ERROR} 422", f"{RESOURCE_ERROR} 404"))


# --- checking a citation ---------------------------------------------------------------------


def _document_text(server: str, doc_id: str) -> str:
    text: str = httpx.get(f"{server}/v1/documents/{doc_id}", timeout=30).json()["text"]
    return text


def _check_document_view(tab: Tab, server: str, expected: str) -> None:
    """The cited span is highlighted, equals ``expected``, is the document's own text at the
    URL's span, and is scrolled into view; the outline marks its section."""
    page = tab.page
    page.wait_for_selector("#doc-text mark.cited")
    highlighted = page.eval_on_selector_all(
        "#doc-text mark.cited", "ms => ms.map(m => m.textContent).join('')"
    )
    assert highlighted == expected
    query = parse_qs(urlsplit(page.url).query)
    start, end = map(int, query["span"][0].split("-"))
    assert _document_text(server, query["open"][0])[start:end] == expected
    page.wait_for_function(
        """() => { const r = document.querySelector('#doc-text mark.cited').getBoundingClientRect();
                   return r.top < innerHeight && r.bottom > 0; }"""
    )
    assert page.locator("#outline a[aria-current]").count() == 1
    citation = page.text_content("#citation-text")
    assert f"Anchor: {query['open'][0]}#c{start}-{end}" in citation


def test_a_citation_opens_the_document_at_the_cited_span(
    server: str, open_tab: Any, shots: Path
) -> None:
    tab = open_tab(server)
    tab.goto("/")
    tab.ask(ZH_QUESTION)
    page = tab.page
    if page.locator("#answer-text a.marker").count():  # POST /v1/answer is served
        n = page.get_attribute("#answer-text a.marker >> nth=0", "data-ref")
        highlighted = page.text_content(f"#hits mark.answer-sentence[data-ref='{n}']")
        page.click("#answer-text a.marker >> nth=0")
    else:  # search only: "Show in document" on the best passage
        highlighted = tab.hits()[0]["text"]
        page.click("#hits li.hit:first-child a.show-doc")
    _check_document_view(tab, server, highlighted)
    _assert_not_blank(_screenshot(page, shots / "document.png"))

    # Copy citation: the anchor and the formatted reference reach the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page.click("#copy-citation")
    page.wait_for_function("() => document.getElementById('copy-status').textContent !== ''")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.text_content("#citation-text")
    assert "張務華" in copied and "第六章" in copied and "Anchor: " in copied

    # A footnote marker in the text leads to its note.
    marker = "#doc-text mark.cited a.fnref"
    page.click(f"{marker} >> nth=0" if page.locator(marker).count() else "#doc-text a.fnref")
    assert page.locator("#doc-text .fndef.flash").count() > 0
    # Back returns to the same result without asking again.
    searches = sum(1 for url in tab.requests if url.endswith(("/v1/search", "/v1/answer")))
    page.click("#back")
    page.wait_for_selector("#ask-view:not([hidden]) li.hit")
    assert searches == sum(1 for u in tab.requests if u.endswith(("/v1/search", "/v1/answer")))
    tab.assert_clean()


def _synthetic_answer(server: str, body: dict[str, Any]) -> dict[str, Any]:
    """A ``POST /v1/answer`` response in the agreed shape, built from the real search: the
    answer cites one sentence of the rank-1 passage (the one with "100%" if it has one)."""
    search = httpx.post(f"{server}/v1/search", json=body, timeout=60).json()
    hit = search["hits"][0]
    text, start = hit["text"], hit["citation"]["char_start"]
    at = max(text.find("100%"), 0)
    begin = max(text.rfind("。", 0, at), text.rfind(" ", 0, at)) + 1
    end = text.index("。", at) + 1
    sentence = text[begin:end]
    citation = {
        **hit["citation"],
        "char_start": start + begin,
        "char_end": start + end,
        "anchor": f"{hit['citation']['doc_id']}#c{start + begin}-{start + end}",
    }
    return {
        "question": body["question"],
        "answerable": True,
        "confidence": search["confidence"],
        "unstated_quantities": [],
        "language": "zh-Hant",
        "method": "extractive",
        "answer": f"{sentence.rstrip('。')}[1]。",
        "references": [{"n": 1, "text": sentence, "hit_rank": 1, "url": "", "citation": citation}],
        "hits": search["hits"],
        "took_ms": 1.0,
        "timings_ms": {},
    }


def test_answer_markers_follow_the_answer_contract(server: str, open_tab: Any) -> None:
    """The page against the agreed ``/v1/answer`` shape (served here by the test, so this holds
    whether or not the server has the route): a clickable [1], the sentence highlighted in its
    passage, and the document view highlighting exactly that sentence."""
    tab = open_tab(server)
    page = tab.page
    answered: list[dict[str, Any]] = []

    def answer(route: Route) -> None:
        response = _synthetic_answer(server, json.loads(route.request.post_data or "{}"))
        answered.append(response)
        route.fulfill(json=response)

    page.route("**/v1/answer", answer)
    tab.goto("/")
    tab.ask(ZH_QUESTION)
    sentence = answered[0]["references"][0]["text"]
    assert page.text_content("#answer-text") == answered[0]["answer"]
    assert page.get_attribute("#answer-text", "lang") == "zh-Hant"
    assert tab.hits()[0]["sentence"] == [sentence]
    page.click("#answer-text a.marker")
    _check_document_view(tab, server, sentence)
    tab.assert_clean()


def test_without_the_answer_route_the_page_shows_the_passages(server: str, open_tab: Any) -> None:
    """A server that predates ``POST /v1/answer`` (404) is asked ``POST /v1/search`` instead."""
    tab = open_tab(server)
    not_found = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "Not Found"}
    tab.page.route("**/v1/answer", lambda route: route.fulfill(status=404, json=not_found))
    tab.goto("/")
    tab.ask(ZH_QUESTION)
    assert "does not compose answers" in tab.page.text_content("#answer-text")
    assert len(tab.hits()) == 5
    tab.ask(EN_QUESTION)  # asked once: the next question goes to /v1/search directly
    assert sum(u.endswith("/v1/answer") for u in tab.requests) == 1
    assert sum(u.endswith("/v1/search") for u in tab.requests) == 2
    tab.assert_clean(allow=(f"{RESOURCE_ERROR} 404",))


# --- documents, docs, keys -------------------------------------------------------------------


def test_documents_list_and_a_document_without_a_span(server: str, open_tab: Any) -> None:
    tab = open_tab(server)
    tab.goto("/")
    tab.page.click("#nav-documents")
    tab.page.wait_for_selector("#documents-body tr")
    rows = tab.page.eval_on_selector_all(
        "#documents-body tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert len(rows) == 2
    by_source = {row[5]: row for row in rows}
    news = next(row for source, row in by_source.items() if NEWS in source)
    assert news[1] == "鄭仲嵐" and news[2] == "2026-01-14" and news[3] == "text"
    chapter = next(row for source, row in by_source.items() if CHAPTER in source)
    assert chapter[1] == "張務華" and chapter[0].startswith("第六章")

    tab.page.click("#documents-body a >> text=第六章")
    tab.page.wait_for_selector("#outline-list a")
    assert tab.page.locator("#doc-text mark.cited").count() == 0
    assert tab.page.is_hidden("#copy-citation")
    outline = tab.page.eval_on_selector_all("#outline-list a", "as => as.map(a => a.textContent)")
    assert "參、跨國併購與鋼鐵戰略自主" in outline
    assert tab.page.locator("#doc-text a.fnref").count() > 20
    if CJK_FONTS.exists():  # Chinese in Traditional Chinese glyphs, a Japanese note in Japanese
        assert any("CJK TC" in f for f in _cjk_fonts_used(tab.page, "#doc-title"))
        assert any("CJK JP" in f for f in _cjk_fonts_used(tab.page, "#doc-text .fndef[lang=ja]"))
    tab.assert_clean()


def test_api_docs_work_offline(server: str, open_tab: Any) -> None:
    tab = open_tab(server)
    tab.goto("/docs")
    tab.page.wait_for_selector(".swagger-ui .info .title")
    assert "citeqa" in tab.page.text_content(".swagger-ui .info .title")
    tab.page.wait_for_selector(".opblock-summary-path[data-path='/v1/search']")
    tab.goto("/redoc")
    tab.page.wait_for_selector("h1 >> text=citeqa")
    assert all(u.startswith(server) for u in tab.requests)
    assert any("/docs-assets/redoc.standalone.js" in u for u in tab.requests)
    tab.assert_clean()


def test_the_page_asks_for_a_key_once(keyed_server: str, open_tab: Any) -> None:
    tab = open_tab(keyed_server)
    page = tab.page
    tab.goto("/")  # the page itself is public
    page.wait_for_selector("#key-dialog[open]")
    page.fill("#key-input", "wrong")
    page.click("#key-ok")
    page.wait_for_function(
        "() => document.getElementById('key-message').textContent.includes('refused')"
    )
    page.wait_for_selector("#key-dialog[open]")
    page.fill("#key-input", KEY)
    page.click("#key-ok")
    page.wait_for_selector("#doc-filter input[type=checkbox]")
    tab.ask(ZH_QUESTION)
    assert len(tab.hits()) == 5
    api_calls = [u for u in tab.requests if "/v1/" in u]
    assert tab.authorization[api_calls[-1]] == f"Bearer {KEY}"

    page.reload()  # asked once: the key is remembered
    tab.wait_for_result()
    assert page.is_hidden("#key-dialog") and len(tab.hits()) == 5
    assert page.is_visible("#forget-key")
    tab.assert_clean(allow=(f"{RESOURCE_ERROR} 401",))
