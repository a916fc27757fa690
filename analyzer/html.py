"""The report as one self-contained HTML page: the module tree with every decision, filters, search, details.

The page is one file with no network access and no external file (it opens from a mail attachment on an
offline machine). It renders from the report's JSON form (`Report.to_dict()`), so it serves every kind of
config: the kind the report records, the per-layer settings of the config that was written (when given),
and a distillation report's `groups`, drawn as chains.

Safety: every string that comes from the model or the simple config is data, never markup or code. The
static part is escaped with `html.escape`; the interactive part reads its data from a
`<script type="application/json">` element whose `<`, `>` and `&` are written as `\\u003c`, `\\u003e` and
`\\u0026`, parses it with `JSON.parse` and builds the DOM with `textContent` only. A Content-Security-Policy
allows nothing but the page's own script and style (by hash): no fetch, no other script, no inline handler.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from analyzer.kinds import DEFAULT_KIND, KINDS
from analyzer.kinds.base import names_shown
from analyzer.report import _COLOURS, DECISIONS, Report

# the terminal table's ANSI colours (analyzer.report._COLOURS) as CSS colours, so that both agree
_ANSI_CSS = {"32": "#1a7f37", "33": "#9a6700", "31": "#cf222e", "2": "#6e7781"}
# a glyph per decision, so that the page reads without colour too (the decision's word is always shown)
_GLYPHS = dict(zip(DECISIONS, ("\u25cf", "\u25d0", "\u2715", "\u25cb"), strict=True))
_SLUGS = dict(zip(DECISIONS, ("quantize", "skipped", "excluded", "not-candidate"), strict=True))

# a top-level list or object of the config longer than this (as JSON) is summarised in the facts
_SETTING_CHARS = 120
# more distill groups than this start folded, so that the module tree stays near the top of the page
_GROUPS_OPEN = 40


def decision_colours() -> dict[str, str]:
    """The CSS colour of each decision, taken from the terminal table's ANSI colour of it."""
    return {decision: _ANSI_CSS[_COLOURS[decision]] for decision in DECISIONS}


def report_html(
    report: Report,
    config: str | Mapping[str, Any] | None = None,
    simple_config: str | os.PathLike[str] | None = None,
    layer_types: Any = None,
) -> str:
    """The page of `report`; see `Report.to_html` for the arguments."""
    config_obj, config_problem = _config_of(report, config)
    simple_text, simple_problem = _simple_config_text(simple_config)
    run = {
        "layer_types": _layer_types_text(layer_types),
        "simple_config": None if simple_config is None else os.fspath(simple_config),
        "simple_config_text": simple_text,
        "simple_config_problem": simple_problem,
        "config_problem": config_problem,
    }
    return render_page(report.to_dict(), config_obj, run)


def _layer_types_text(layer_types: Any) -> str | None:
    if layer_types is None:
        return None
    if isinstance(layer_types, str):
        return layer_types
    return ", ".join(str(t) for t in layer_types)


def _config_of(
    report: Report, config: str | Mapping[str, Any] | None
) -> tuple[Mapping[str, Any] | None, str | None]:
    """The written config as an object, from `config` (JSON text or object) or else `report.config_file`."""
    if isinstance(config, Mapping):
        return config, None
    source = "the config text"
    if config is None:
        if report.config_file is None:
            return None, None
        from graph.files import CONFIG_LIMIT, read_limited

        source = report.config_file
        try:
            config = read_limited(report.config_file, CONFIG_LIMIT).decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            return None, f"{source}: cannot be read ({getattr(err, 'strerror', None) or err})"
    try:
        obj = json.loads(config)
    except ValueError as err:
        return None, f"{source}: not JSON ({err})"
    if not isinstance(obj, dict):
        return None, f"{source}: not a JSON object"
    return obj, None


def _simple_config_text(path: str | os.PathLike[str] | None) -> tuple[str | None, str | None]:
    if path is None:
        return None, None
    from graph.files import SIMPLE_CONFIG_LIMIT, read_limited

    try:
        return read_limited(path, SIMPLE_CONFIG_LIMIT).decode("utf-8", errors="replace"), None
    except OSError as err:
        return None, f"cannot be read ({err.strerror or err})"


def embed_json(value: Any) -> str:
    """`value` as JSON that is safe inside a `<script type="application/json">` element.

    `<`, `>` and `&` are escaped as JSON unicode escapes, so that no `</script>` or `<!--` can end or change
    the element; `JSON.parse` gives back the same strings.
    """
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(
    data: Mapping[str, Any], config: Mapping[str, Any] | None = None, run: Mapping[str, Any] | None = None
) -> str:
    """The page of a report given as its JSON form (`Report.to_dict()`, or a dict of that shape).

    Args:
        data: the report's JSON form; `kind` (top level or in `provenance`) and `groups` are used when present.
        config: the config that was written, as an object; each layer's entry is shown as its settings.
        run: facts of the run the report does not record: `layer_types`, `simple_config` (its path),
            `simple_config_text`, and problems met reading either file.
    """
    run = dict(run or {})
    layers: list[Mapping[str, Any]] = list(data.get("layers") or ())
    names = {str(layer.get("name")) for layer in layers}
    settings: dict[str, Any] = {}
    globals_: dict[str, Any] = {}
    for key, value in (config or {}).items():
        if key in names and isinstance(value, Mapping):
            settings[key] = value
        else:
            globals_[key] = value
    groups = _groups(data)
    payload = {
        "report": data,
        "settings": settings,
        "has_config": config is not None,
        "decisions": [
            {"name": d, "glyph": _GLYPHS[d], "slug": _SLUGS[d], "colour": c}
            for d, c in decision_colours().items()
        ],
        "groups": groups,
    }
    script = _SCRIPT
    style = _style()
    csp = (
        "default-src 'none'; "
        f"script-src '{_sha256(script)}'; style-src '{_sha256(style)}'; "
        "img-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'"
    )
    summary = data.get("summary") or {}
    line = str(summary.get("line", ""))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{escape(csp)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>QuantScope report: {escape(line)}</title>",
        f"<style>{style}</style>",
        "</head>",
        "<body>",
        "<header>",
        f'<h1>QuantScope report <span class="kind">{escape(_kind(data))} config</span></h1>',
        f'<p class="summary" id="qs-summary">{escape(line)}</p>',
        _facts(data, run, globals_),
        "</header>",
        *_groups_section(groups, names),
        *_notes_section(data),
        _controls(layers),
        '<main id="qs-tree" aria-live="polite"><noscript><p class="problem">The module tree needs JavaScript; '
        "the summary, the facts and the notes above do not.</p></noscript></main>",
        f'<script type="application/json" id="qs-data">{embed_json(payload)}</script>',
        f"<script>{script}</script>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def _kind(data: Mapping[str, Any]) -> str:
    provenance = data.get("provenance") or {}
    return str(data.get("kind") or provenance.get("kind") or DEFAULT_KIND)


def _groups(data: Mapping[str, Any]) -> list[list[str]]:
    groups = data.get("groups")
    if not isinstance(groups, Sequence) or isinstance(groups, str):
        return []
    return [[str(name) for name in group] for group in groups if isinstance(group, Sequence)]


def _shape(shape: Any) -> str:
    if not shape:
        return "unknown"
    return "x".join("?" if d is None else str(d) for d in shape)


def _row(label: str, value: str, extra: str = "") -> str:
    return f"<tr><th>{escape(label)}</th><td>{escape(value)}{extra}</td></tr>"


def _facts(data: Mapping[str, Any], run: Mapping[str, Any], globals_: Mapping[str, Any]) -> str:
    p = data.get("provenance") or {}
    exporter = str(p.get("exporter") or "unknown")
    opset = p.get("opset")
    inputs = ", ".join(_shape(s) for s in p.get("input_shapes") or ()) or "unknown"
    rows = [
        _row("QuantScope", str(p.get("quantscope_version") or "unknown")),
        _row("kind", _kind(data)),
        _row("exporter", f"{exporter}, opset {opset if opset is not None else 'unknown'}, inputs {inputs}"),
    ]
    if p.get("export_choice"):
        rows.append(_row(f"why {exporter}", str(p["export_choice"])))
    rows.append(_row("torch", str(p.get("torch_version") or "not recorded (no torch in this run)")))
    rows.append(_row("onnx", str(p.get("onnx_version") or "unknown")))
    rows.append(_row("layer types", _layer_types_fact(_kind(data), run.get("layer_types"))))
    simple = run.get("simple_config")
    if simple is None:
        rows.append(_row("simple config", "none (built-in defaults)"))
    else:
        extra = ""
        if run.get("simple_config_text") is not None:
            extra = (
                '<details class="file"><summary>contents</summary>'
                f"<pre>{escape(str(run['simple_config_text']))}</pre></details>"
            )
        elif run.get("simple_config_problem"):
            extra = f' <span class="problem">{escape(str(run["simple_config_problem"]))}</span>'
        rows.append(_row("simple config", str(simple), extra))
    config_file = data.get("config_file")
    rows.append(_row("config file", str(config_file) if config_file else "not written"))
    if globals_:
        shown = {"distill_group": len(_groups(data))} if _groups(data) else {}
        rows.append(
            "<tr><th>config settings</th><td>"
            + ", ".join(_setting(key, value, shown) for key, value in globals_.items())
            + "</td></tr>"
        )
    if run.get("config_problem"):
        rows.append(_row("layer settings", str(run["config_problem"])))
    return '<table class="facts" id="qs-facts">' + "".join(rows) + "</table>"


def _layer_types_fact(kind: str, given: str | None) -> str:
    """The candidate types of the run: a kind's fixed ones (whatever was passed), else the mode given."""
    row = KINDS.get(kind)
    if row is not None and not row.takes_layer_types:
        return f"{', '.join(row.select_types(None))} (fixed by the {kind} config)"
    return given or "not recorded"


def _setting(key: str, value: Any, shown: Mapping[str, int]) -> str:
    """One top-level setting of the config as markup: scalars and short lists as written, the rest summarised.

    A list the page draws elsewhere (`distill_group`, drawn as the Groups section) is counted and linked to;
    another list or object longer than `_SETTING_CHARS` is summarised by its first entries.
    """
    if key in shown:
        n = shown[key]
        return (
            f'{escape(key)}: {n} {"group" if n == 1 else "groups"}, <a href="#qs-groups">see Groups below</a>'
        )
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= _SETTING_CHARS or not isinstance(value, (list, dict)):
        return escape(f"{key}: {text}")
    if isinstance(value, dict):
        return escape(f"{key}: {len(value)} keys ({names_shown([str(k) for k in value])})")
    items = [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in value]
    return escape(f"{key}: {len(value)} entries ({names_shown(items)})")


def _groups_section(groups: list[list[str]], names: set[str]) -> Iterable[str]:
    if not groups:
        return
    is_open = " open" if len(groups) <= _GROUPS_OPEN else ""
    yield (
        f'<section id="qs-groups"><details class="groups-box"{is_open}>'
        f'<summary><h2>Groups ({len(groups)})</h2></summary><ol class="groups">'
    )
    for group in groups:
        members = []
        for i, name in enumerate(group):
            if i:  # an element of its own, so that it takes its own room between the boxes
                members.append('<span class="chain-arrow" aria-hidden="true">\u2192</span>')
            if name in names:  # a layer of the report: the script makes it a link to the layer's row
                members.append(f'<button type="button" class="chain-node" data-layer="{escape(name)}">')
                members.append(f"{escape(name)}</button>")
            else:
                members.append(f'<span class="chain-node">{escape(name)}</span>')
        yield '<li class="chain">' + "".join(members) + "</li>"
    yield "</ol></details></section>"


def _notes_section(data: Mapping[str, Any]) -> Iterable[str]:
    notes = data.get("notes") or ()
    if not notes:
        return
    yield f'<section id="qs-notes"><h2>Notes ({len(notes)})</h2><ul class="notes">'
    for note in notes:
        head = f"{note.get('code', '')} {note.get('check', '')}".strip()
        yield f"<li><strong>{escape(head)}</strong> {escape(str(note.get('reason', '')))}</li>"
    yield "</ul></section>"


def _options(counter: Counter[str], label: Mapping[str, str] | None = None) -> str:
    return "".join(
        f'<option value="{escape(key)}">{escape((label or {}).get(key, key))} ({n})</option>'
        for key, n in sorted(counter.items())
    )


def _controls(layers: Sequence[Mapping[str, Any]]) -> str:
    decisions = Counter(str(layer.get("decision")) for layer in layers)
    codes: Counter[str] = Counter()
    checks: dict[str, str] = {}
    for layer in layers:
        seen = set()
        if layer.get("code"):
            seen.add(str(layer["code"]))
            checks[str(layer["code"])] = f"{layer['code']} {layer.get('check') or ''}".strip()
        for adv in layer.get("advisories") or ():
            seen.add(str(adv.get("code")))
            checks[str(adv.get("code"))] = f"{adv.get('code')} {adv.get('check') or ''}".strip()
        codes.update(seen)
    classes = Counter(str(layer.get("class_name")) for layer in layers)
    boxes = "".join(
        f'<label class="dec {_SLUGS[d]}"><input type="checkbox" name="decision" value="{escape(d)}" checked>'
        f'<span class="badge {_SLUGS[d]}">{_GLYPHS[d]} {escape(d)}</span> '
        f'<span class="count" data-decision="{escape(d)}">{decisions[d]}</span></label>'
        for d in DECISIONS
    )
    return (
        '<nav class="controls" id="qs-controls">'
        f'<fieldset class="decisions"><legend>decision</legend>{boxes}</fieldset>'
        '<label>check <select id="qs-code"><option value="">any code</option>'
        f"{_options(codes, checks)}</select></label>"
        '<label>class <select id="qs-class"><option value="">any class</option>'
        f"{_options(classes)}</select></label>"
        '<label>layer <input type="search" id="qs-search" placeholder="search a layer name" '
        'autocomplete="off" spellcheck="false"></label>'
        '<button type="button" id="qs-expand">expand all</button>'
        '<button type="button" id="qs-collapse">collapse all</button>'
        f'<span class="status" id="qs-status">{len(layers)} layers</span>'
        "</nav>"
    )


def _style() -> str:
    colours = decision_colours()
    rules = "".join(
        f".badge.{_SLUGS[d]}{{color:{c};border-color:{c}}}.row.{_SLUGS[d]}{{border-left-color:{c}}}"
        for d, c in colours.items()
    )
    return _CSS + rules


_CSS = """
*{box-sizing:border-box}[hidden]{display:none!important}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#fff}
header,section,nav,main{padding:0 20px}
h1{font-size:20px;margin:16px 0 4px}h2{font-size:16px;margin:14px 0 6px}
.kind{font-weight:normal;color:#57606a;font-size:15px;margin-left:6px}
.summary{font-size:15px;font-weight:600;margin:4px 0 10px}
table.facts{border-collapse:collapse;margin-bottom:8px}
table.facts th{text-align:left;font-weight:600;color:#57606a;padding:1px 14px 1px 0;vertical-align:top;white-space:nowrap}
table.facts td{padding:1px 0;overflow-wrap:anywhere}
pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f6f8fa;padding:6px 8px;margin:4px 0;overflow:auto;max-height:320px;white-space:pre-wrap;overflow-wrap:anywhere}
.problem{color:#cf222e}
.controls{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid #d0d7de;display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;padding-top:8px;padding-bottom:8px}
.controls fieldset{border:0;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:4px 10px;align-items:center}
.controls legend{float:left;margin-right:6px;color:#57606a}
.controls label{color:#57606a;white-space:nowrap}
.controls input[type=search]{width:18em}
.controls select{max-width:16em}
.controls .count{color:#1f2328;font-variant-numeric:tabular-nums}
.status{color:#57606a;margin-left:auto}
.badge{display:inline-block;border:1px solid;border-radius:10px;padding:0 7px;font-size:12px;white-space:nowrap;background:#fff}
details.block{margin:2px 0;content-visibility:auto;contain-intrinsic-size:auto 26px}
details.block>summary{cursor:pointer;padding:3px 4px;border-radius:4px;list-style-position:outside;margin-left:14px}
details.block>summary:hover{background:#f6f8fa}
details.block>summary .label{font-weight:600;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;margin-right:8px}
details.block>summary .total{color:#57606a;margin-right:8px}
details.block>summary .badge{margin-right:4px}
.body{margin-left:14px;border-left:1px dotted #d0d7de;padding-left:8px}
.row{content-visibility:auto;contain-intrinsic-size:auto 24px;display:grid;grid-template-columns:max(7em,calc(17em - var(--nest,1) * 23px)) 15em 10.5em 5.5em minmax(0,1fr);gap:10px;align-items:baseline;padding:2px 6px;border-left:4px solid transparent;cursor:pointer;border-radius:2px}
.row:hover,.row:focus{background:#f6f8fa;outline:none}
.row.open{background:#eef4ff}
.row .name{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
.row .cls{color:#57606a;overflow-wrap:anywhere}.row .code{font-family:ui-monospace,monospace;color:#57606a}
.row .badge{justify-self:start}
.row .reason{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;color:#424a53}
.detail{margin:2px 0 8px 20px;padding:8px 12px;border:1px solid #d0d7de;border-radius:6px;background:#fcfcfd}
.detail dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 14px;margin:0}
.detail dt{color:#57606a;font-weight:600}.detail dd{margin:0;overflow-wrap:anywhere}
/* a layer's settings (a few dozen lines at most) are shown whole, not in a scroll box */.detail pre{max-height:none}
.detail ul{margin:0;padding-left:18px}
.empty{color:#57606a;padding:12px 0}
.groups-box>summary{cursor:pointer}.groups-box>summary h2{display:inline-block}
.groups{padding-left:28px}.chain{margin:4px 0}
.chain-node{display:inline-block;font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;border:1px solid #d0d7de;border-radius:4px;padding:1px 6px;background:#f6f8fa;color:#1f2328}
button.chain-node{cursor:pointer}
.chain-arrow{display:inline-block;margin:0 6px;color:#57606a}
.flash{animation:flash 1.5s}@keyframes flash{from{background:#fff8c5}to{background:transparent}}
.notes{margin:0;padding-left:20px}
"""

_SCRIPT = r"""
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("qs-data").textContent);
  const report = DATA.report || {};
  const layers = report.layers || [];
  const settings = DATA.settings || {};
  const DEC = {};
  for (const d of DATA.decisions) DEC[d.name] = d;
  const KNOWN = new Set(["name", "class_name", "layer_type", "op_types", "nodes", "weight_shape", "decision",
    "code", "check", "reason", "advisories", "inferred", "int4_packing", "group"]);
  const groupOf = new Map();
  (DATA.groups || []).forEach(function (group, i) {
    for (const name of group) if (!groupOf.has(name)) groupOf.set(name, [i, group]);
  });

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function badge(decision) {
    const d = DEC[decision];
    return el("span", "badge " + (d ? d.slug : ""), (d ? d.glyph + " " : "") + decision);
  }
  function shape(s) {
    if (s === null || s === undefined) return "-";
    return s.map(function (d) { return d === null ? "?" : String(d); }).join("x") || "scalar";
  }
  function local(reason, name) {
    const prefix = (name || "<root>") + ": ";
    return String(reason || "").split("; ").map(function (p) {
      return p.startsWith(prefix) ? p.slice(prefix.length) : p;
    }).join("; ");
  }

  // the module tree: a node per dotted prefix of a layer name; records hang on the node of their name
  function node(label, full, depth, parent) {
    return { label: label, full: full, depth: depth, parent: parent, children: new Map(), items: [], block: null,
      built: false, any: true, counts: {} };
  }
  const root = node("model", "", 0, null);
  layers.forEach(function (rec, index) {
    let at = root;
    const name = String(rec.name);
    if (name !== "") {
      let full = "";
      for (const part of name.split(".")) {
        full = full === "" ? part : full + "." + part;
        let next = at.children.get(part);
        if (!next) { next = node(part, full, at.depth + 1, at); at.children.set(part, next); }
        at = next;
      }
    }
    at.items.push({ rec: rec, index: index, node: at, ok: true, row: null, detail: null });
  });

  function count(n) {
    const counts = {};
    let total = 0;
    for (const item of n.items) { counts[item.rec.decision] = (counts[item.rec.decision] || 0) + 1; total++; }
    for (const child of n.children.values()) {
      const [c, t] = count(child);
      for (const k in c) counts[k] = (counts[k] || 0) + c[k];
      total += t;
    }
    n.counts = counts; n.total = total;
    return [counts, total];
  }
  count(root);
  const openAll = layers.length <= 300;

  function row(item, label) {
    const rec = item.rec;
    const d = DEC[rec.decision];
    const r = el("div", "row " + (d ? d.slug : ""));
    // the name column narrows by each level of indentation (23px: a body's margin, border and padding),
    // so that the other columns line up across the tree
    const n = item.node;
    r.style.setProperty("--nest", String(n === root ? 1 : n.children.size === 0 ? n.depth : n.depth + 1));
    r.tabIndex = 0;
    r.setAttribute("role", "button");
    r.setAttribute("aria-expanded", "false");
    r.dataset.index = String(item.index);
    r.appendChild(el("span", "name", label));
    r.appendChild(el("span", "cls", rec.class_name));
    r.appendChild(badge(rec.decision));
    let code = rec.code || "";
    if (!code && rec.advisories && rec.advisories.length) {
      code = "(" + Array.from(new Set(rec.advisories.map(function (a) { return a.code; }))).sort().join(",") + ")";
    }
    r.appendChild(el("span", "code", code));
    r.appendChild(el("span", "reason", local(rec.reason, rec.name)));
    r.title = rec.name === "" ? "<root>" : rec.name;
    r.dataset.name = rec.name;
    r.addEventListener("click", function () { toggle(item); });
    r.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); toggle(item); }
    });
    item.row = r;
    return r;
  }

  function field(dl, label, value) {
    dl.appendChild(el("dt", null, label));
    const dd = el("dd");
    if (value instanceof Node) dd.appendChild(value); else dd.textContent = String(value);
    dl.appendChild(dd);
  }
  function list(values) {
    if (!values.length) return "none";
    const ul = el("ul");
    for (const v of values) ul.appendChild(el("li", null, v));
    return ul;
  }
  function detail(item) {
    const rec = item.rec;
    const box = el("div", "detail");
    const dl = el("dl");
    field(dl, "layer", rec.name === "" ? "<root>" : rec.name);
    field(dl, "class", rec.class_name + (rec.layer_type ? " (layer type " + rec.layer_type + ")" : ""));
    field(dl, "decision", badge(rec.decision));
    if (rec.code) field(dl, "check", rec.code + " " + (rec.check || ""));
    field(dl, "reason", rec.reason);
    let value = "no config given";
    if (DATA.has_config) {
      value = rec.decision === "excluded" ? "not in the config: an excluded layer is left out of it"
        : rec.decision === "not a candidate" ? "not in the config: not a candidate" : "not in the config";
    }
    if (Object.prototype.hasOwnProperty.call(settings, rec.name)) {
      value = el("pre", null, JSON.stringify(settings[rec.name], null, 2));
    }
    field(dl, "settings in the config", value);
    field(dl, "advisories", list((rec.advisories || []).map(function (a) {
      return a.code + " " + a.check + ": " + a.reason;
    })));
    field(dl, "inferred facts", list((rec.inferred || []).map(function (i) {
      return i.fact + " " + (i.value === null ? "not established" : i.value) + " (" + i.basis + ")";
    })));
    if (rec.int4_packing) field(dl, "INT4 packing", rec.int4_packing);
    // one "group" line: the record's own (a distillation report says which group and why, or why none),
    // else the chain the layer is drawn in
    if (typeof rec.group === "string") {
      field(dl, "group", rec.group);
    } else if (groupOf.has(rec.name)) {
      const [i, group] = groupOf.get(rec.name);
      field(dl, "group", "#" + (i + 1) + ": " + group.join(" \u2192 "));
    }
    field(dl, "ops", (rec.op_types || []).join(", ") || "none");
    field(dl, "ONNX nodes", list((rec.nodes || []).map(String)));
    field(dl, "weight", shape(rec.weight_shape));
    for (const key of Object.keys(rec)) {
      if (!KNOWN.has(key)) field(dl, key.replace(/_/g, " "), typeof rec[key] === "string" ? rec[key] : JSON.stringify(rec[key]));
    }
    box.appendChild(dl);
    return box;
  }
  function toggle(item) {
    if (item.detail) {
      item.detail.remove(); item.detail = null;
      item.row.classList.remove("open"); item.row.setAttribute("aria-expanded", "false");
      return;
    }
    item.detail = detail(item);
    item.row.after(item.detail);
    item.row.classList.add("open"); item.row.setAttribute("aria-expanded", "true");
  }

  function summaryOf(n) {
    const s = el("summary");
    s.appendChild(el("span", "label", n.label));
    s.appendChild(el("span", "total", n.total + (n.total === 1 ? " layer" : " layers")));
    for (const d of DATA.decisions) {
      if (n.counts[d.name]) {
        const b = el("span", "badge " + d.slug, d.glyph + " " + n.counts[d.name] + " " + d.name);
        b.dataset.decision = d.name;
        b.dataset.count = String(n.counts[d.name]);
        s.appendChild(b);
      }
    }
    return s;
  }
  let active = false; // a filter or the search narrows what is shown
  // a block's rows are made when it is first opened, so that a large model's page loads at once
  function fill(n, parent) {
    for (const child of n.children.values()) {
      if (child.children.size === 0) {
        for (const item of child.items) parent.appendChild(row(item, child.label));
        continue;
      }
      const block = el("details", "block");
      block.dataset.path = child.full;
      block.title = child.full;
      block.appendChild(summaryOf(child));
      block.addEventListener("toggle", function () { if (block.open) build(child); });
      child.block = block;
      parent.appendChild(block);
      if (openAll || child.depth <= 1) { build(child); block.open = true; }
    }
  }
  function build(n) {
    if (n.built) return;
    n.built = true;
    const body = el("div", "body");
    for (const item of n.items) body.appendChild(row(item, n === root ? "<root>" : "(" + n.label + " itself)"));
    fill(n, body);
    n.block.appendChild(body);
    paint(n);
  }
  function open(n) {
    const chain = [];
    for (let p = n; p; p = p.parent) chain.unshift(p);
    for (const p of chain) { if (p.block) { build(p); p.block.open = true; } }
  }
  const tree = document.getElementById("qs-tree");
  const top = el("details", "block");
  top.id = "qs-root";
  top.dataset.path = "";
  top.open = true;
  top.appendChild(summaryOf(root));
  root.block = top;
  tree.appendChild(top);
  build(root);
  const empty = el("p", "empty", "No layer matches the filters.");
  empty.id = "qs-empty";
  empty.hidden = true;
  tree.appendChild(empty);

  // filters: decision, check code (of the decision or an advisory), class, and a search on the layer name
  const boxes = Array.from(document.querySelectorAll('input[name="decision"]'));
  const codeSel = document.getElementById("qs-code");
  const classSel = document.getElementById("qs-class");
  const search = document.getElementById("qs-search");
  const status = document.getElementById("qs-status");
  function show(item) {
    if (!item.row) return;
    item.row.hidden = !item.ok;
    if (item.detail) item.detail.hidden = !item.ok;
  }
  // what the filters leave shown, on the rows and blocks made so far; a block with matches opens
  function paint(n) {
    for (const item of n.items) show(item);
    for (const child of n.children.values()) {
      if (child.children.size === 0) { for (const item of child.items) show(item); continue; }
      if (!child.block) continue;
      child.block.hidden = !child.any;
      if (active && child.any) { child.block.open = true; if (!child.built) { build(child); continue; } }
      if (child.built) paint(child);
    }
  }
  function apply() {
    const allowed = new Set(boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; }));
    const code = codeSel.value, cls = classSel.value;
    const q = search.value.trim().toLowerCase();
    active = q !== "" || code !== "" || cls !== "" || allowed.size < boxes.length;
    let shown = 0;
    function matches(rec) {
      if (!allowed.has(rec.decision)) return false;
      if (cls !== "" && rec.class_name !== cls) return false;
      if (code !== "" && rec.code !== code && !(rec.advisories || []).some(function (a) { return a.code === code; })) return false;
      const name = rec.name === "" ? "<root>" : String(rec.name);
      return q === "" || name.toLowerCase().includes(q);
    }
    function compute(n) {
      let any = false;
      for (const item of n.items) { item.ok = matches(item.rec); if (item.ok) { any = true; shown++; } }
      for (const child of n.children.values()) if (compute(child)) any = true;
      n.any = any;
      return any;
    }
    compute(root);
    paint(root);
    empty.hidden = shown !== 0;
    status.textContent = active ? "showing " + shown + " of " + layers.length + " layers" : layers.length + " layers";
    status.dataset.shown = String(shown);
  }
  for (const b of boxes) b.addEventListener("change", apply);
  codeSel.addEventListener("change", apply);
  classSel.addEventListener("change", apply);
  search.addEventListener("input", apply);
  function expand(n) {
    for (const child of n.children.values()) {
      if (!child.block) continue;
      build(child);
      child.block.open = true;
      expand(child);
    }
  }
  document.getElementById("qs-expand").addEventListener("click", function () { expand(root); });
  document.getElementById("qs-collapse").addEventListener("click", function () {
    for (const d of tree.querySelectorAll("details.block")) d.open = false;
    top.open = true;
  });

  // a group member that is a layer of the report leads to its row
  const byName = new Map();
  (function index(n) {
    for (const item of n.items) if (!byName.has(item.rec.name)) byName.set(item.rec.name, item);
    for (const child of n.children.values()) index(child);
  })(root);
  for (const button of document.querySelectorAll("button.chain-node")) {
    button.addEventListener("click", function () {
      const item = byName.get(button.dataset.layer);
      if (!item) return;
      if (!item.ok) { for (const b of boxes) b.checked = true; codeSel.value = ""; classSel.value = ""; search.value = ""; apply(); }
      open(item.node.children.size === 0 ? item.node.parent : item.node);
      if (!item.detail) toggle(item);
      item.row.scrollIntoView({ block: "center" });
      item.row.classList.remove("flash"); void item.row.offsetWidth; item.row.classList.add("flash");
    });
  }
  // the facts' link to the groups opens them when they start folded
  const groupsBox = document.querySelector("#qs-groups > details");
  for (const a of document.querySelectorAll('a[href="#qs-groups"]')) {
    a.addEventListener("click", function () { if (groupsBox) groupsBox.open = true; });
  }
  apply();
  document.body.dataset.ready = "true";
})();
"""
