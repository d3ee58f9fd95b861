/* citeqa research page: ask, read the ranked passages, check each citation in its document.
 *
 * Plain JavaScript, no build step, no third-party code, same-origin requests only. Every piece
 * of document or user text enters the page through textContent, never as HTML: a corpus may
 * contain "<script>".
 *
 * State lives in the URL, so a result can be shared and reloaded:
 *   /?q=…&k=5&mode=hybrid&doc=<id>&doc=<id>&section=…        the question and its filters
 *   …&view=document&open=<doc_id>&span=<start>-<end>          a document, a span highlighted
 *   /?view=documents                                          the documents list
 * Offsets (char_start, char_end) count Unicode code points, as Python does; JavaScript strings
 * count UTF-16 units, so every offset goes through cpIndex() before it touches a string.
 */
"use strict";

(() => {
  const DEFAULT_K = 5;
  const DEFAULT_MODE = "hybrid";
  const KEY_STORAGE = "citeqa.apiKey";
  const SIGNALS = ["dense", "lexical", "fused"];
  const MARKER_RE = /[⁰¹²³⁴⁵⁶⁷⁸⁹]+|\[\^(\d+)\]/g;
  const SUPERSCRIPT = "⁰¹²³⁴⁵⁶⁷⁸⁹";
  const QUANTITY_WORDS = { tonnage: "a tonnage", money: "a sum of money", percent: "a percentage" };

  const $ = (id) => document.getElementById(id);

  /* ---------------------------------------------------------------- small DOM helpers */

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  /** A function mapping a code-point offset of `text` to its UTF-16 offset. */
  function cpIndex(text) {
    if (!/[\uD800-\uDFFF]/.test(text)) return (cp) => cp;
    const table = [0];
    let u = 0;
    for (const ch of text) {
      u += ch.length;
      table.push(u);
    }
    return (cp) => table[Math.max(0, Math.min(cp, table.length - 1))];
  }

  function cpLength(text) {
    let n = 0;
    for (const _ of text) n += 1;
    return n;
  }

  /** A language tag for a passage, from its script, so CJK glyphs come from the right font. */
  function langOf(text) {
    if (/[\u3040-\u30ff]/.test(text)) return "ja";
    if (/[\u3400-\u9fff]/.test(text)) return "zh";
    return "en";
  }

  function safeUrl(raw) {
    try {
      const url = new URL(raw);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch {
      return null;
    }
  }

  function encodeDocId(docId) {
    return docId.split("/").map(encodeURIComponent).join("/");
  }

  function pageLabel(citation) {
    if (citation.page === null || citation.page === undefined) return "";
    const end = citation.page_end;
    return end && end !== citation.page ? `pp. ${citation.page}–${end}` : `p. ${citation.page}`;
  }

  /* ---------------------------------------------------------------- API access */

  class ApiError extends Error {
    constructor(status, title, detail) {
      super(detail || title);
      this.status = status;
      this.title = title;
      this.detail = detail;
    }
  }

  function storedKey() {
    try {
      return localStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  function storeKey(key) {
    try {
      if (key) localStorage.setItem(KEY_STORAGE, key);
      else localStorage.removeItem(KEY_STORAGE);
    } catch {
      /* storage off: the key lasts as long as this page */
    }
    memoryKey = key;
    $("forget-key").hidden = !key;
  }

  let memoryKey = storedKey();
  let keyPrompt = null; // one dialog for every request that met a 401 at the same time

  function askForKey(refused) {
    if (keyPrompt) return keyPrompt;
    const dialog = $("key-dialog");
    const input = $("key-input");
    $("key-message").textContent = refused
      ? "The server refused that key. Enter another one."
      : "This server needs an API key. It is kept in this browser and sent as a bearer token.";
    input.value = "";
    keyPrompt = new Promise((resolve) => {
      dialog.addEventListener(
        "close",
        () => {
          keyPrompt = null;
          const key = dialog.returnValue === "ok" ? input.value.trim() : "";
          if (key) storeKey(key);
          resolve(key);
        },
        { once: true },
      );
    });
    dialog.returnValue = "";
    dialog.showModal();
    input.focus();
    return keyPrompt;
  }

  async function api(path, options = {}) {
    const headers = { Accept: "application/json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (memoryKey) headers.Authorization = `Bearer ${memoryKey}`;
    let response;
    try {
      response = await fetch(path, {
        method: options.method || "GET",
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: options.signal,
        credentials: "same-origin",
      });
    } catch (error) {
      if (error && error.name === "AbortError") throw error;
      throw new ApiError(0, "The server could not be reached", "Check that it is running, then ask again.");
    }
    if (response.status === 401) {
      const sentKey = Boolean(memoryKey);
      const key = await askForKey(sentKey);
      if (key) return api(path, options);
      throw new ApiError(401, "An API key is needed", "This server answers only requests that carry an API key.");
    }
    if (!response.ok) {
      let problem = null;
      try {
        problem = await response.json();
      } catch {
        /* not JSON: say what we know */
      }
      const title = (problem && problem.title) || response.statusText || "Error";
      const detail = (problem && typeof problem.detail === "string" && problem.detail) || "";
      throw new ApiError(response.status, title, detail);
    }
    return response.json();
  }

  /** Routes a server may lack (an older one): tried once, then not again after a 404. */
  const missing = new Set();

  /** A 404 for the route itself (FastAPI's "Not Found"), not for a thing the route looked up. */
  function routeMissing(error) {
    return error instanceof ApiError && error.status === 404 && error.title === "Not Found";
  }

  async function optional(path, options) {
    if (missing.has(path)) return null;
    try {
      return await api(path, options);
    } catch (error) {
      if (!routeMissing(error)) throw error;
      missing.add(path);
      return null;
    }
  }

  /* ---------------------------------------------------------------- URL state */

  function readState() {
    const params = new URLSearchParams(location.search);
    const k = Number.parseInt(params.get("k") || "", 10);
    return {
      view: params.get("view") || "ask",
      q: params.get("q") || "",
      k: Number.isInteger(k) && k >= 1 && k <= 50 ? k : DEFAULT_K,
      mode: ["hybrid", "dense", "lexical"].includes(params.get("mode")) ? params.get("mode") : DEFAULT_MODE,
      docs: params.getAll("doc"),
      section: params.get("section") || "",
      open: params.get("open") || "",
      span: params.get("span") || "",
    };
  }

  function askParams(state) {
    const params = new URLSearchParams();
    if (state.q) params.set("q", state.q);
    if (state.k !== DEFAULT_K) params.set("k", String(state.k));
    if (state.mode !== DEFAULT_MODE) params.set("mode", state.mode);
    for (const doc of state.docs) params.append("doc", doc);
    if (state.section) params.set("section", state.section);
    return params;
  }

  function askUrl(state) {
    const query = askParams(state).toString();
    return query ? `/?${query}` : "/";
  }

  function documentUrl(docId, start, end) {
    const params = askParams(readState());
    params.set("view", "document");
    params.set("open", docId);
    if (start !== undefined && end !== undefined) params.set("span", `${start}-${end}`);
    return `/?${params.toString()}`;
  }

  function navigate(url, replace = false) {
    if (replace) history.replaceState({ page: true }, "", url);
    else history.pushState({ page: true, from: location.href }, "", url);
    render();
  }

  /** Links marked data-nav (and those made by link()) change the view without a reload. */
  function link(href, text, attrs = {}) {
    const a = el("a", { href, ...attrs }, text);
    a.dataset.nav = "";
    return a;
  }

  document.addEventListener("click", (event) => {
    const a = event.target instanceof Element ? event.target.closest("a[data-nav]") : null;
    if (!a || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    if (a.id === "back" && history.state && history.state.from === a.href) {
      history.back();
      return;
    }
    navigate(a.getAttribute("href"));
  });
  window.addEventListener("popstate", () => render());

  /* ---------------------------------------------------------------- views */

  function show(view) {
    $("ask-view").hidden = view !== "ask";
    $("document-view").hidden = view !== "document";
    $("documents-view").hidden = view !== "documents";
    for (const name of ["ask", "documents"]) {
      const nav = $(`nav-${name}`);
      if (view === name) nav.setAttribute("aria-current", "page");
      else nav.removeAttribute("aria-current");
    }
  }

  function showError(error) {
    const box = $("error");
    clear(box);
    if (!error) {
      box.hidden = true;
      return;
    }
    const title = error.title || "Something went wrong";
    box.append(el("strong", {}, title));
    const detail = error.detail || (error.title ? "" : String(error.message || error));
    if (detail && detail !== title) box.append(el("span", {}, ` — ${detail}`));
    box.hidden = false;
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  async function render() {
    const state = readState();
    showError(null);
    if (state.view === "document" && state.open) {
      show("document");
      await renderDocument(state);
    } else if (state.view === "documents") {
      show("documents");
      await renderDocumentsList();
    } else {
      show("ask");
      fillForm(state);
      if (state.q.trim()) await runQuestion(state);
      else clearResults();
    }
  }

  /* ---------------------------------------------------------------- the form */

  let documents = null; // [{doc_id, title, …}] once loaded
  let documentsPromise = null;

  function loadDocuments() {
    if (!documentsPromise) {
      documentsPromise = api("/v1/documents")
        .then((body) => {
          documents = body.data;
          return documents;
        })
        .catch((error) => {
          documentsPromise = null;
          throw error;
        });
    }
    return documentsPromise;
  }

  function fillForm(state) {
    $("q").value = state.q;
    $("mode").value = state.mode;
    $("top-k").value = String(state.k);
    $("section").value = state.section;
    for (const box of document.querySelectorAll("#doc-filter input[type=checkbox]")) {
      box.checked = state.docs.includes(box.value);
    }
  }

  function formState() {
    const k = Number.parseInt($("top-k").value, 10);
    return {
      view: "ask",
      q: $("q").value.trim(),
      k: Number.isInteger(k) ? Math.min(50, Math.max(1, k)) : DEFAULT_K,
      mode: $("mode").value,
      docs: [...document.querySelectorAll("#doc-filter input:checked")].map((b) => b.value),
      section: $("section").value.trim(),
    };
  }

  function renderDocFilter(list) {
    const box = $("doc-filter");
    clear(box);
    const chosen = readState().docs;
    for (const doc of list) {
      const id = `doc-${doc.doc_id.replace(/[^A-Za-z0-9_-]/g, "_")}`;
      const input = el("input", { type: "checkbox", id, value: doc.doc_id, name: "doc" });
      input.checked = chosen.includes(doc.doc_id);
      box.append(
        el("div", { class: "check" }, input, el("label", { for: id, lang: langOf(doc.title) }, doc.title || doc.doc_id)),
      );
    }
    if (!list.length) box.append(el("span", { class: "hint" }, "The index holds no documents."));
  }

  let sectionsLoaded = false;
  async function loadSectionSuggestions() {
    if (sectionsLoaded || !documents || documents.length > 20) return;
    sectionsLoaded = true;
    const paths = new Set();
    for (const doc of documents) {
      try {
        const full = await getDocument(doc.doc_id);
        for (const path of sectionPaths(full.sections)) paths.add(path);
      } catch {
        /* suggestions only */
      }
    }
    const list = $("section-list");
    clear(list);
    for (const path of paths) list.append(el("option", { value: path }));
  }

  /** The heading path (outermost first, " > ") in force at each heading of an outline. */
  function sectionPaths(sections) {
    const stack = [];
    return sections.map((s) => {
      while (stack.length && stack[stack.length - 1].level >= s.level) stack.pop();
      stack.push(s);
      return stack.map((h) => h.title).join(" > ");
    });
  }

  function submit() {
    const state = formState();
    if (!state.q) {
      showError({ title: "Type a question first." });
      $("q").focus();
      return;
    }
    const url = askUrl(state);
    navigate(url, url === location.pathname + location.search); // asking again adds no entry
  }

  /* ---------------------------------------------------------------- asking */

  const results = new Map(); // askUrl → response, so Back does not ask again
  const citations = new Map(); // anchor → citation seen in a result (page, authors, …)
  let inflight = null;
  let firstAnswerMarked = false;

  function clearResults() {
    $("answer").hidden = true;
    $("passages").hidden = true;
    setStatus("");
  }

  function requestBody(state) {
    const body = { question: state.q, top_k: state.k, mode: state.mode };
    if (state.docs.length) body.doc_ids = state.docs;
    if (state.section) body.section_prefix = state.section;
    return body;
  }

  /** POST /v1/answer; a server without it (404) is asked POST /v1/search instead. */
  async function ask(state, signal) {
    const body = requestBody(state);
    const answer = await optional("/v1/answer", { method: "POST", body, signal });
    if (answer) return { kind: "answer", ...answer };
    return { kind: "search", ...(await api("/v1/search", { method: "POST", body, signal })) };
  }

  async function runQuestion(state) {
    const key = askUrl(state);
    document.title = `${state.q} — citeqa`;
    let result = results.get(key);
    if (!result) {
      if (inflight) inflight.abort();
      const controller = new AbortController();
      inflight = controller;
      setStatus("Searching the corpus…");
      $("ask-button").disabled = true;
      try {
        result = await ask(state, controller.signal);
        results.set(key, result);
      } catch (error) {
        if (error && error.name === "AbortError") return;
        setStatus("");
        clearResults();
        showError(error);
        return;
      } finally {
        if (inflight === controller) {
          inflight = null;
          $("ask-button").disabled = false;
        }
      }
      if (askUrl(readState()) !== key) return; // the user moved on meanwhile
    }
    renderResult(result);
    if (!firstAnswerMarked) {
      firstAnswerMarked = true;
      performance.mark("citeqa:first-answer");
    }
  }

  function renderResult(result) {
    const references = result.references || [];
    for (const hit of result.hits) citations.set(hit.citation.anchor, hit.citation);
    for (const ref of references) citations.set(ref.citation.anchor, ref.citation);

    const n = result.hits.length;
    const took = typeof result.took_ms === "number" ? ` in ${Math.round(result.took_ms)} ms` : "";
    setStatus(`${n} passage${n === 1 ? "" : "s"}${took}.`);
    renderAnswer(result, references);
    renderHits(result, references);
    $("answer").dataset.question = result.question; // which question the page shows (tests wait on it)
  }

  function renderAnswer(result, references) {
    const section = $("answer");
    const text = $("answer-text");
    const banner = $("unanswerable");
    const meta = $("answer-meta");
    clear(text);
    clear(meta);
    section.classList.toggle("refused", !result.answerable);
    section.dataset.answerable = String(result.answerable);

    if (!result.answerable) {
      let sentence = "The corpus does not answer this question.";
      const kinds = (result.unstated_quantities || []).map((k) => QUANTITY_WORDS[k] || k);
      if (kinds.length) sentence += ` No passage states ${kinds.join(" or ")} for it.`;
      banner.textContent = sentence;
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }

    if (result.kind === "answer") {
      // The answer quotes the corpus, so its script (not the question's language) picks the font;
      // a Chinese answer to a Chinese question keeps the question's variant (zh-Hant, zh-Hans).
      const script = langOf(result.answer);
      const language = result.language || "";
      text.lang = script === "zh" && language.startsWith("zh") ? language : script;
      const byNumber = new Map(references.map((r) => [r.n, r]));
      let last = 0;
      for (const match of result.answer.matchAll(/\[(\d+)\]/g)) {
        const ref = byNumber.get(Number(match[1]));
        if (!ref) continue;
        text.append(result.answer.slice(last, match.index));
        const c = ref.citation;
        text.append(
          link(documentUrl(c.doc_id, c.char_start, c.char_end), `[${ref.n}]`, {
            class: "marker",
            "data-ref": ref.n,
            title: `${c.title} — ${c.section}`,
            "aria-label": `Citation ${ref.n}: open in ${c.title}`,
          }),
        );
        last = match.index + match[0].length;
      }
      text.append(result.answer.slice(last));
      const parts = [];
      if (result.method) parts.push(result.method);
      if (result.language) parts.push(`language ${result.language}`);
      if (typeof result.confidence === "number") parts.push(`confidence ${result.confidence.toFixed(2)}`);
      meta.textContent = parts.join(" · ");
    } else {
      text.removeAttribute("lang");
      text.textContent = result.answerable
        ? "This server ranks passages but does not compose answers; the best passages follow."
        : "";
      if (typeof result.confidence === "number") meta.textContent = `confidence ${result.confidence.toFixed(2)}`;
    }
    text.hidden = !text.textContent;
    section.hidden = false;
  }

  function renderHits(result, references) {
    const list = $("hits");
    clear(list);
    $("passages-heading").textContent = result.answerable ? "Passages" : "Closest passages";
    const maxima = {};
    for (const name of SIGNALS) {
      maxima[name] = Math.max(0, ...result.hits.map((h) => (h.scores && h.scores[name]) || 0));
    }
    for (const hit of result.hits) list.append(renderHit(hit, result.answerable, references, maxima));
    $("passages").hidden = result.hits.length === 0 && result.answerable;
    if (!result.hits.length) list.append(el("li", { class: "empty" }, "No passage matches these filters."));
  }

  /** References whose sentence lies inside this hit's span: the sentences to highlight. */
  function sentencesIn(hit, references) {
    const c = hit.citation;
    return references
      .filter(
        (r) =>
          r.citation.doc_id === c.doc_id &&
          r.citation.char_start >= c.char_start &&
          r.citation.char_end <= c.char_end,
      )
      .sort((a, b) => a.citation.char_start - b.citation.char_start);
  }

  function renderHit(hit, answerable, references, maxima) {
    const c = hit.citation;
    const item = el("li", { class: "hit", "data-anchor": c.anchor, "data-rank": hit.rank });

    const head = el("div", { class: "hit-head" }, el("span", { class: "rank", "aria-label": `Rank ${hit.rank}` }, hit.rank));
    if (!answerable) head.append(el("span", { class: "closest" }, "closest, not an answer"));
    head.append(breadcrumbs(c));
    const page = pageLabel(c);
    if (page) head.append(el("span", { class: "page" }, page));
    item.append(head);

    const body = el("p", { class: "hit-text", lang: langOf(hit.text) });
    const at = cpIndex(hit.text);
    let last = 0;
    for (const ref of sentencesIn(hit, references)) {
      const start = at(ref.citation.char_start - c.char_start);
      const end = at(ref.citation.char_end - c.char_start);
      if (start < last) continue;
      body.append(hit.text.slice(last, start));
      // The [n] tag is drawn by CSS (::before), so the passage's text stays the corpus's text.
      body.append(el("mark", { class: "answer-sentence", "data-ref": ref.n, title: `Cited as [${ref.n}]` }, hit.text.slice(start, end)));
      last = end;
    }
    body.append(hit.text.slice(last));
    item.append(body);

    const foot = el("div", { class: "hit-foot" });
    foot.append(scoreBars(hit, maxima));
    foot.append(
      el(
        "p",
        { class: "hit-actions" },
        link(documentUrl(c.doc_id, c.char_start, c.char_end), "Show in document", { class: "show-doc" }),
        el("span", { class: "doc-name", lang: langOf(c.title) }, ` ${c.title}`),
      ),
    );
    item.append(foot);

    if (c.footnotes && c.footnotes.length) item.append(footnoteList(c.footnotes));
    return item;
  }

  function breadcrumbs(citation) {
    const nav = el("nav", { class: "crumbs", "aria-label": "Section" });
    const ol = el("ol", { lang: langOf(citation.section) });
    for (const part of (citation.section || citation.title).split(" > ")) ol.append(el("li", {}, part));
    nav.append(ol);
    return nav;
  }

  function scoreBars(hit, maxima) {
    const box = el("div", { class: "scores", role: "group", "aria-label": "Scores per signal" });
    for (const name of SIGNALS) {
      if (!hit.scores || typeof hit.scores[name] !== "number") continue;
      const value = hit.scores[name];
      // dense is a cosine (at most 1); BM25 and RRF have no fixed top, so they scale to the best hit.
      const top = name === "dense" ? 1 : maxima[name] || 1;
      const share = Math.max(0, Math.min(1, value / top));
      const fill = el("span", { class: `fill fill-${name}` });
      fill.style.width = `${(share * 100).toFixed(1)}%`;
      box.append(
        el(
          "div",
          { class: "score", title: `${name}: ${value}` },
          el("span", { class: "score-name" }, name),
          el("span", { class: "bar", role: "img", "aria-label": `${name} ${value.toFixed(3)}` }, fill),
          el("span", { class: "score-value" }, value.toFixed(3)),
        ),
      );
    }
    return box;
  }

  function sourceLink(raw) {
    const href = safeUrl(raw);
    if (!href) return el("span", { class: "source" }, raw);
    return el("a", { href, rel: "noopener noreferrer", target: "_blank", class: "source" }, raw);
  }

  function footnoteList(notes) {
    const box = el("div", { class: "notes" });
    box.append(el("h3", { class: "notes-heading" }, "Footnotes"));
    const ol = el("ol");
    for (const note of notes) {
      const li = el("li", { value: note.n, lang: langOf(note.text) });
      li.append(el("span", { class: "note-n" }, `${note.n} `));
      // Each source URL becomes a link where the note's text names it, or after the text.
      let rest = note.text;
      const trailing = [];
      for (const raw of note.urls || []) {
        const at = rest.indexOf(raw);
        if (at < 0) {
          trailing.push(raw);
          continue;
        }
        li.append(rest.slice(0, at), sourceLink(raw));
        rest = rest.slice(at + raw.length);
      }
      li.append(rest);
      for (const raw of trailing) li.append(" ", sourceLink(raw));
      ol.append(li);
    }
    box.append(ol);
    return box;
  }

  /* ---------------------------------------------------------------- the document view */

  const documentCache = new Map();

  function getDocument(docId) {
    if (!documentCache.has(docId)) {
      const promise = api(`/v1/documents/${encodeDocId(docId)}`).catch((error) => {
        documentCache.delete(docId);
        throw error;
      });
      documentCache.set(docId, promise);
    }
    return documentCache.get(docId);
  }

  async function citationFor(doc, start, end, paths) {
    const anchor = `${doc.doc_id}#c${start}-${end}`;
    if (citations.has(anchor)) return citations.get(anchor);
    if (!missing.has("/v1/passages")) {
      try {
        const passage = await api(`/v1/passages?anchor=${encodeURIComponent(anchor)}`);
        if (passage && passage.citation) return { ...passage.citation, anchor };
      } catch (error) {
        if (routeMissing(error)) missing.add("/v1/passages");
        /* and compute it below from the document */
      }
    }
    let section = doc.title;
    doc.sections.forEach((s, i) => {
      if (s.char_start <= start) section = paths[i];
    });
    return { doc_id: doc.doc_id, title: doc.title, section, anchor, char_start: start, char_end: end, page: null, authors: doc.authors, date: doc.date };
  }

  function formatReference(c) {
    const parts = [];
    if (c.authors && c.authors.length) parts.push(c.authors.join(", "));
    parts.push(`“${c.title}”`);
    const path = (c.section || "").split(" > ").filter((p) => p && p !== c.title);
    if (path.length) parts.push(path.join(" › "));
    const page = pageLabel(c);
    if (page) parts.push(page);
    parts.push(c.date || "n.d.");
    const reference = parts.join(", ");
    return `${reference}${reference.endsWith(".") ? "" : "."} Anchor: ${c.anchor}`;
  }

  async function renderDocument(state) {
    const textBox = $("doc-text");
    $("back").setAttribute("href", askUrl(state));
    $("back").hidden = !state.q;
    let doc;
    try {
      doc = await getDocument(state.open);
    } catch (error) {
      clear(textBox);
      $("doc-title").textContent = "Document";
      showError(error);
      return;
    }
    if (readState().open !== state.open) return;

    const length = cpLength(doc.text);
    const spanMatch = /^(\d+)-(\d+)$/.exec(state.span);
    let span = null;
    if (spanMatch) {
      const start = Number(spanMatch[1]);
      const end = Number(spanMatch[2]);
      if (start < end && end <= length) span = [start, end];
      else showError({ title: "That span is not in the document", detail: `it has ${length} characters` });
    }
    document.title = `${doc.title} — citeqa`;
    $("doc-title").textContent = doc.title;
    $("doc-title").lang = langOf(doc.title);
    const meta = [doc.authors.join(", "), doc.date, doc.format, `${length} characters`, doc.doc_id];
    $("doc-meta").textContent = meta.filter(Boolean).join(" · ");

    const paths = sectionPaths(doc.sections);
    renderOutline(doc, span, paths);
    renderText(doc, span);

    const citeBox = $("citation-text");
    const copy = $("copy-citation");
    $("copy-status").textContent = "";
    if (span) {
      const citation = await citationFor(doc, span[0], span[1], paths);
      citeBox.textContent = formatReference(citation);
      citeBox.lang = langOf(citeBox.textContent);
      copy.hidden = false;
      const mark = textBox.querySelector("mark.cited");
      if (mark) {
        mark.scrollIntoView({ block: "center" });
        textBox.focus({ preventScroll: true });
      }
    } else {
      citeBox.textContent = "";
      copy.hidden = true;
      window.scrollTo(0, 0);
    }
  }

  function renderOutline(doc, span, paths) {
    const list = $("outline-list");
    clear(list);
    let current = -1;
    doc.sections.forEach((s, i) => {
      if (span && s.char_start <= span[0]) current = i;
    });
    doc.sections.forEach((s, i) => {
      const a = el("a", { href: `#sec-${i}`, class: `level-${Math.min(s.level, 4)}`, lang: langOf(s.title), title: paths[i] }, s.title);
      if (i === current) a.setAttribute("aria-current", "location");
      a.addEventListener("click", (event) => {
        event.preventDefault();
        const target = document.getElementById(`sec-${i}`);
        if (target) target.scrollIntoView({ block: "start" });
      });
      list.append(el("li", {}, a));
    });
    if (!doc.sections.length) list.append(el("li", { class: "hint" }, "No headings."));
  }

  /** For each footnote marker in the text, the note it points at: the first note with that number
   * defined after the marker (numbering may restart), else the first with that number. */
  function markerTargets(text, footnotes, toCp) {
    const byNumber = new Map();
    footnotes.forEach((f, i) => {
      if (!byNumber.has(f.n)) byNumber.set(f.n, []);
      byNumber.get(f.n).push(i);
    });
    const found = [];
    for (const match of text.matchAll(MARKER_RE)) {
      const digits = match[1] || [...match[0]].map((ch) => SUPERSCRIPT.indexOf(ch)).join("");
      const candidates = byNumber.get(Number(digits));
      if (!candidates) continue;
      const start = toCp(match.index);
      const end = start + cpLength(match[0]);
      const inside = candidates.find((i) => footnotes[i].char_start <= start && start < footnotes[i].char_end);
      if (inside !== undefined) continue; // a definition's own number
      const after = candidates.find((i) => footnotes[i].char_start >= end);
      found.push({ start, end, note: after === undefined ? candidates[0] : after });
    }
    return found;
  }

  /** UTF-16 offset → code-point offset, for regex matches. */
  function invertIndex(text) {
    if (!/[\uD800-\uDFFF]/.test(text)) return (u) => u;
    const table = new Map();
    let u = 0;
    let cp = 0;
    for (const ch of text) {
      table.set(u, cp);
      u += ch.length;
      cp += 1;
    }
    table.set(u, cp);
    return (offset) => table.get(offset) ?? 0;
  }

  /** The canonical text, cut at every boundary that changes how a stretch is shown. */
  function renderText(doc, span) {
    const box = $("doc-text");
    clear(box);
    box.lang = langOf(doc.text.slice(0, 2000));
    const text = doc.text;
    const at = cpIndex(text);
    const toCp = invertIndex(text);
    const length = cpLength(text);
    const headings = doc.sections.map((s) => {
      const newline = text.indexOf("\n", at(s.char_start));
      return { start: s.char_start, end: newline < 0 ? length : toCp(newline), level: s.level };
    });
    const markers = markerTargets(text, doc.footnotes, toCp);

    const cuts = new Set([0, length]);
    const add = (a, b) => {
      cuts.add(Math.max(0, Math.min(length, a)));
      cuts.add(Math.max(0, Math.min(length, b)));
    };
    if (span) add(span[0], span[1]);
    for (const b of doc.blocks) add(b.char_start, b.char_end);
    for (const f of doc.footnotes) add(f.char_start, f.char_end);
    for (const m of markers) add(m.start, m.end);
    for (const h of headings) add(h.start, h.end);
    const points = [...cuts].sort((a, b) => a - b);

    const anchorsAt = new Map(); // offset → ids of zero-width anchors placed there
    const place = (offset, id) => {
      if (!anchorsAt.has(offset)) anchorsAt.set(offset, []);
      anchorsAt.get(offset).push(id);
    };
    doc.sections.forEach((s, i) => place(s.char_start, `sec-${i}`));
    doc.footnotes.forEach((f, i) => place(f.char_start, `fn-${i}`));

    const fragment = document.createDocumentFragment();
    for (let p = 0; p < points.length - 1; p += 1) {
      const a = points[p];
      const b = points[p + 1];
      for (const id of anchorsAt.get(a) || []) fragment.append(el("span", { id, class: "anchor" }));
      let node = document.createTextNode(text.slice(at(a), at(b)));
      const marker = markers.find((m) => m.start <= a && a < m.end);
      if (marker) {
        const note = doc.footnotes[marker.note];
        const ref = el("a", { href: `#fn-${marker.note}`, class: "fnref", "aria-label": `Footnote ${note.n}` }, node);
        ref.addEventListener("click", (event) => {
          event.preventDefault();
          flashNote(marker.note);
        });
        node = ref;
      }
      if (span && span[0] <= a && a < span[1]) node = el("mark", { class: "cited" }, node);
      const heading = headings.find((h) => h.start <= a && a < h.end);
      if (heading) node = el("strong", { class: `heading level-${Math.min(heading.level, 4)}` }, node);
      const block = doc.blocks.find((x) => x.char_start <= a && a < x.char_end);
      const note = doc.footnotes.findIndex((f) => f.char_start <= a && a < f.char_end);
      const classes = [];
      if (block && block.kind !== "body") classes.push(`block-${block.kind}`);
      if (note >= 0) classes.push("fndef", `fndef-${note}`);
      // A note quoting a Japanese title in a Chinese document gets Japanese glyphs.
      const noteLang = note >= 0 ? langOf(doc.footnotes[note].text) : null;
      const lang = noteLang && noteLang !== box.lang ? noteLang : null;
      if (classes.length) node = el("span", { class: classes.join(" "), lang }, node);
      fragment.append(node);
    }
    for (const id of anchorsAt.get(length) || []) fragment.append(el("span", { id, class: "anchor" }));
    box.append(fragment);
  }

  function flashNote(index) {
    const target = document.getElementById(`fn-${index}`);
    if (!target) return;
    target.scrollIntoView({ block: "center" });
    for (const node of document.querySelectorAll(".fndef.flash")) node.classList.remove("flash");
    for (const node of document.querySelectorAll(`.fndef-${index}`)) node.classList.add("flash");
  }

  async function copyCitation() {
    const text = $("citation-text").textContent;
    const status = $("copy-status");
    try {
      await navigator.clipboard.writeText(text);
      status.textContent = "Copied.";
    } catch {
      // No clipboard (plain http on another host): select the text for Ctrl+C instead.
      const range = document.createRange();
      range.selectNodeContents($("citation-text"));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      status.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
    }
  }

  /* ---------------------------------------------------------------- the documents list */

  async function renderDocumentsList() {
    const body = $("documents-body");
    document.title = "Documents — citeqa";
    let list;
    try {
      list = await loadDocuments();
    } catch (error) {
      showError(error);
      return;
    }
    clear(body);
    for (const doc of list) {
      body.append(
        el(
          "tr",
          {},
          el(
            "td",
            { lang: langOf(doc.title) },
            link(documentUrl(doc.doc_id), doc.title || doc.doc_id),
            ...(doc.warnings || []).map((w) => el("span", { class: "doc-warning", lang: "en" }, `Warning: ${w}`)),
          ),
          el("td", { lang: langOf(doc.authors.join(" ")) }, doc.authors.join(", ") || "—"),
          el("td", { class: "date" }, doc.date || "—"),
          el("td", {}, doc.format || "—"),
          el("td", { class: "num" }, typeof doc.chars === "number" ? doc.chars.toLocaleString("en") : "—"),
          el("td", { class: "source-path" }, doc.source_path || doc.doc_id),
        ),
      );
    }
    if (!list.length) body.append(el("tr", {}, el("td", { colspan: 6 }, "The index holds no documents.")));
  }

  /* ---------------------------------------------------------------- start */

  function start() {
    $("forget-key").hidden = !memoryKey;
    $("forget-key").addEventListener("click", () => {
      storeKey("");
      setStatus("The API key is forgotten.");
    });
    $("ask-form").addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    $("q").addEventListener("keydown", (event) => {
      // Enter asks; not while an input method is composing (Chinese and Japanese IMEs use Enter).
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submit();
      }
    });
    $("section").addEventListener("focus", () => void loadSectionSuggestions());
    // On a phone the filters start folded, unless the URL sets one.
    const initial = readState();
    const filtered = initial.docs.length || initial.section || initial.mode !== DEFAULT_MODE || initial.k !== DEFAULT_K;
    if (window.matchMedia("(max-width: 720px)").matches && !filtered) $("filters-box").open = false;
    $("copy-citation").addEventListener("click", () => void copyCitation());

    loadDocuments()
      .then((list) => {
        renderDocFilter(list);
        fillForm(readState());
      })
      .catch((error) => {
        clear($("doc-filter"));
        $("doc-filter").append(el("span", { class: "hint" }, `Documents unavailable: ${error.detail || error.title}`));
      });
    history.replaceState({ page: true }, "", location.href);
    void render();
  }

  start();
})();
