// The srpo explorer (docs/view.md). Every text from the data is set with textContent: nothing from a model or a
// dataset is ever parsed as HTML.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("data").textContent);
  const PAGE_SIZE = 50;  // items rendered at a time: large runs open fast (docs/view.md#large-runs)
  const TRANSITIONS = ["wrong_to_right", "right_to_right", "right_to_wrong", "wrong_to_wrong"];
  const SHORT = {wrong_to_right: "w→r", right_to_right: "r→r", right_to_wrong: "r→w", wrong_to_wrong: "w→w"};
  const state = {transition: "", correct: "", category: "", text: "", sort: "", pair: "", run: 0, step: null, page: 0};
  let shown = [];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return node;
  }
  const pct = (x) => (x === undefined || x === null ? "" : (100 * x).toFixed(1));
  const blob = (prefix, key) => { const s = document.getElementById(prefix + key); return s ? s.textContent : null; };

  // --- header -----------------------------------------------------------------------------------------------------
  function header() {
    const h = document.getElementById("header");
    const names = DATA.runs.map((r) => r.name);
    const kind = {eval: "evaluation", compare: "comparison", train: "training completions"}[DATA.kind];
    h.appendChild(el("h1", {}, `srpo view: ${kind}: ${names.join(" vs ")}`));
    if (DATA.kind !== "train") {
      const cols = ["run", "model", "benchmark", "n", "final acc %", "first acc %", "w→r %", "r→w %", "reflection %",
                    "five-block %"];
      const table = el("table", {id: "runs"}, el("tr", {}, ...cols.map((c) => el("th", {}, c))));
      DATA.runs.forEach((r, i) => {
        const m = r.metrics || {};
        const label = DATA.kind === "compare" ? `${"AB"[i]}: ${r.name}` : r.name;
        table.appendChild(el("tr", {}, ...[label, r.model, `${r.benchmark || ""} ${r.split || ""}`, m.n,
          pct(m.final_accuracy), pct(m.first_accuracy), pct(m.wrong_to_right), pct(m.right_to_wrong),
          pct(m.reflection_rate), pct(m.format_rate)].map((v) => el("td", {}, v === undefined ? "" : v))));
      });
      h.appendChild(table);
    }
    if (DATA.paired) {
      const p = DATA.paired;
      const cell = (id, v, text) => el("td", {id, "data-value": String(v)}, text === undefined ? String(v) : text);
      h.appendChild(el("table", {id: "paired"},
        el("tr", {}, ...["common items", "both right", "only A right", "only B right", "both wrong",
                         "acc A − acc B (points)", "95% CI", "McNemar exact p"].map((c) => el("th", {}, c))),
        el("tr", {}, cell("paired-n", p.n_common), cell("paired-both-right", p.both_right),
           cell("paired-only-a", p.only_a), cell("paired-only-b", p.only_b), cell("paired-both-wrong", p.both_wrong),
           cell("paired-difference", p.difference, (100 * p.difference).toFixed(1)),
           cell("paired-ci", JSON.stringify(p.difference_ci95), p.difference_ci95 ?
             `[${(100 * p.difference_ci95[0]).toFixed(1)}, ${(100 * p.difference_ci95[1]).toFixed(1)}]` : ""),
           cell("paired-p", p.mcnemar_p, Number(p.mcnemar_p).toPrecision(3)))));
    }
    if (DATA.curves && DATA.curves.length) {
      const curves = el("div", {class: "curves"});
      for (const c of DATA.curves) curves.appendChild(el("img", {src: c.src, alt: c.title, title: c.title}));
      h.appendChild(curves);
    }
    for (const n of DATA.notes || []) h.appendChild(el("p", {class: "notes"}, n));
  }

  // --- controls ---------------------------------------------------------------------------------------------------
  function select(id, label, options, key) {
    const s = el("select", {id});
    for (const [value, text] of options) s.appendChild(el("option", {value}, text));
    s.addEventListener("change", () => { state[key] = key === "run" ? Number(s.value) : s.value; state.page = 0; update(); });
    return el("label", {}, label + " ", s);
  }
  function controls() {
    const c = document.getElementById("controls");
    if (DATA.kind === "compare") {
      c.appendChild(select("filter-pair", "runs", [["", "all"], ["only_a", "only A right"], ["only_b", "only B right"],
        ["both_right", "both right"], ["both_wrong", "both wrong"]], "pair"));
      c.appendChild(select("filter-run", "filters below apply to", [["0", "A"], ["1", "B"]], "run"));
    }
    c.appendChild(select("filter-transition", "transition", [["", "all"], ...TRANSITIONS.map((t) => [t, SHORT[t]]),
      ["none", "no reflection"]], "transition"));
    c.appendChild(select("filter-correct", "correctness", [["", "all"], ["final_right", "final right"],
      ["final_wrong", "final wrong"], ["first_right", "first right"], ["first_wrong", "first wrong"],
      ["malformed", "not five-block"]], "correct"));
    const cats = new Set();
    for (const it of DATA.items) for (const [k, v] of Object.entries(it.categories || {})) cats.add(`${k}: ${v}`);
    if (cats.size) c.appendChild(select("filter-category", "category",
      [["", "all"], ...[...cats].sort().map((x) => [x, x])], "category"));
    const text = el("input", {id: "filter-text", type: "search", placeholder: "id, question or response text"});
    text.addEventListener("input", () => { state.text = text.value.toLowerCase(); state.page = 0; update(); });
    c.appendChild(el("label", {}, "text ", text));
    c.appendChild(select("sort", "sort", [["", "original order"], ["len_desc", "longest first"],
      ["len_asc", "shortest first"]], "sort"));
    if (DATA.kind === "train") {
      const steps = [...new Set(DATA.items.map((it) => it.step))].sort((a, b) => a - b);
      state.steps = steps;
      state.step = steps.length ? steps[steps.length - 1] : null;
      const slider = el("input", {id: "step-slider", type: "range", min: "0", max: String(Math.max(steps.length - 1, 0)),
                                  value: String(Math.max(steps.length - 1, 0))});
      const label = el("span", {id: "step-label"}, String(state.step));
      slider.addEventListener("input", () => { state.step = steps[Number(slider.value)]; label.textContent = String(state.step);
                                                state.page = 0; update(); });
      c.appendChild(el("label", {}, "step ", slider, " ", label));
    }
  }

  // --- filtering --------------------------------------------------------------------------------------------------
  const haystacks = new Map();
  function haystack(it) {
    if (!haystacks.has(it)) {
      const parts = [it.id, it.question || "", it.gold || ""];
      for (const r of it.runs) parts.push(r.raw || "", ...(r.blocks || []).map((b) => b[1]));
      haystacks.set(it, parts.join("\n").toLowerCase());
    }
    return haystacks.get(it);
  }
  function keep(it) {
    if (state.step !== null && it.step !== state.step) return false;
    if (state.pair) {
      const [a, b] = it.runs.map((r) => !!r.final_correct);
      const ok = {only_a: a && !b, only_b: !a && b, both_right: a && b, both_wrong: !a && !b}[state.pair];
      if (!ok) return false;
    }
    const r = it.runs[state.run] || it.runs[0];
    if (state.transition === "none" ? !!r.transition : state.transition && r.transition !== state.transition) return false;
    if (state.correct) {
      const ok = {final_right: r.final_correct === true, final_wrong: r.final_correct !== true,
                  first_right: r.first_correct === true, first_wrong: r.first_correct !== true,
                  malformed: !!r.malformed}[state.correct];
      if (!ok) return false;
    }
    if (state.category && !Object.entries(it.categories || {}).some(([k, v]) => `${k}: ${v}` === state.category)) return false;
    return !state.text || haystack(it).includes(state.text);
  }
  const length = (it) => Math.max(...it.runs.map((r) => r.tokens || 0));

  function update() {
    shown = DATA.items.filter(keep);
    if (state.sort === "len_desc") shown.sort((a, b) => length(b) - length(a));
    if (state.sort === "len_asc") shown.sort((a, b) => length(a) - length(b));
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages - 1);
    document.getElementById("count").textContent = String(shown.length);
    const inScope = DATA.items.filter((it) => state.step === null || it.step === state.step).length;
    document.getElementById("total").textContent = String(inScope);
    const counts = {};
    for (const it of shown) { const t = (it.runs[state.run] || it.runs[0]).transition || "none"; counts[t] = (counts[t] || 0) + 1; }
    const tc = document.getElementById("transition-counts");
    tc.textContent = "";
    for (const t of [...TRANSITIONS, "none"]) {
      tc.appendChild(el("span", {class: "tag " + t, id: "count-" + t, "data-count": String(counts[t] || 0)},
                        `${SHORT[t] || "no reflection"} ${counts[t] || 0}`));
    }
    for (const id of ["pager-top", "pager-bottom"]) pager(document.getElementById(id), pages);
    render();
  }
  function pager(nav, pages) {
    nav.textContent = "";
    if (pages <= 1) return;
    const go = (p) => () => { state.page = p; update(); window.scrollTo(0, 0); };
    const prev = el("button", {}, "‹ previous"); prev.disabled = state.page === 0; prev.onclick = go(state.page - 1);
    const next = el("button", {}, "next ›"); next.disabled = state.page >= pages - 1; next.onclick = go(state.page + 1);
    nav.append(prev, el("span", {}, ` page ${state.page + 1} of ${pages} `), next);
  }

  // --- one item ---------------------------------------------------------------------------------------------------
  function image(key) {
    const thumb = key === null ? null : blob("thumb-", key);
    if (!thumb) return el("div", {class: "placeholder"}, "image not available");
    const img = el("img", {src: thumb, alt: "image", loading: "lazy"});
    img.addEventListener("click", () => {
      document.getElementById("lightbox-img").src = blob("full-", key) || thumb;
      document.getElementById("lightbox").hidden = false;
    });
    return img;
  }
  function verdict(label, ok, answer) {
    const cls = ok === true ? "right" : ok === false ? "wrong" : "";
    const word = ok === true ? "right" : ok === false ? "wrong" : "?";
    return el("span", {class: "verdict " + cls}, `${label}: ${word}`, answer ? ` (${answer})` : "");
  }
  function runView(r, title) {
    const box = el("div", {class: "run"});
    if (title) box.appendChild(el("h3", {}, title));
    box.appendChild(el("div", {},
      r.transition ? el("span", {class: "tag " + r.transition}, SHORT[r.transition]) : el("span", {class: "tag"}, "no reflection"),
      verdict("first", r.first_correct), " ", verdict("final", r.final_correct), " ",
      el("span", {class: "tokens"}, `${r.tokens === null || r.tokens === undefined ? "?" : r.tokens} tokens` +
        (r.reflection_tokens ? `, reflection ${r.reflection_tokens}` : ""))));
    if (r.rewards) {
      const terms = Object.entries(r.rewards).map(([k, v]) => `${k} ${v === null ? "–" : v.toFixed(3)}`);
      if (r.advantage !== null && r.advantage !== undefined) terms.push(`advantage ${r.advantage.toFixed(3)}`);
      box.appendChild(el("div", {class: "rewards"}, "rewards: " + terms.join(" · ")));
    }
    if (r.blocks) {
      const names = ["first think", "first answer", "reflection", "second think", "final answer"];
      r.blocks.forEach(([kind, text], i) => box.appendChild(
        el("div", {class: "block " + kind}, el("span", {class: "label"}, names[i]), text)));
    } else {
      box.appendChild(el("div", {class: "reason"}, "not five-block: " + r.malformed));
      box.appendChild(el("div", {class: "block raw"}, el("span", {class: "label"}, "raw response"), r.raw));
    }
    return box;
  }
  function itemView(it) {
    const head = el("div", {class: "item-head"}, el("span", {class: "item-id"}, it.id),
      el("span", {}, "reference: ", el("b", {}, it.gold || "")),
      ...Object.entries(it.categories || {}).map(([k, v]) => el("span", {class: "tag"}, `${k}: ${v}`)));
    if (it.step !== undefined) head.appendChild(el("span", {class: "tag"}, `step ${it.step}`));
    const images = el("div", {class: "images"}, ...(it.images.length ? it.images.map(image) : [image(null)]));
    const runs = el("div", {class: "runs"},
      ...it.runs.map((r, i) => runView(r, it.runs.length > 1 ? `${"AB"[i]}: ${DATA.runs[i].name}` : "")));
    const text = el("div", {style: "flex:1;min-width:0"},
      it.question === null ? el("p", {class: "notes"}, "question not available") : el("div", {class: "question"}, it.question),
      runs);
    return el("article", {class: "item", "data-id": it.id}, head, el("div", {class: "item-body"}, images, text));
  }
  function render() {
    const list = document.getElementById("list");
    list.textContent = "";
    const frag = document.createDocumentFragment();
    for (const it of shown.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE)) frag.appendChild(itemView(it));
    list.appendChild(frag);
  }

  document.getElementById("lightbox").addEventListener("click", (e) => { e.currentTarget.hidden = true; });
  header();
  controls();
  update();
  window.srpoView = {state, update, shown: () => shown, firstRender: performance.now()};
})();
