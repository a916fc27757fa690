"""The HTML report: one self-contained, safe page for every kind of config, checked as data and in a real browser.

The browser tests load the page in headless Chromium (tests/browser.py) and read what a person would see:
no console error, the counts, what a filter and the search leave shown, the details of a layer, a distillation
report's groups as chains, and hostile names shown as text with no script run.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer import Report, create_quant_retrain_config
from analyzer.checks import Finding, Severity
from analyzer.cli import main
from analyzer.html import decision_colours, embed_json, render_page
from analyzer.report import (
    _COLOURS,
    DECISIONS,
    EXCLUDED,
    NOT_CANDIDATE,
    QUANTIZE,
    SKIPPED,
    Advisory,
    Inferred,
    LayerRecord,
)
from graph.ir import Producer
from tests import browser

HOSTILE = "<script>window.__qsPwned = 1</script>"
HOSTILE_IMG = '<img src=x onerror="window.__qsPwned = 2">'
HOSTILE_BLOCK = "x</details></main><script>window.__qsPwned = 3</script>"
HOSTILE_TEXT = '"</pre><script>window.__qsPwned = 4</script>&amp;<!--'

_DATA = re.compile(r'<script type="application/json" id="qs-data">(.*?)</script>', re.S)


def _payload(page: str) -> dict[str, Any]:
    match = _DATA.search(page)
    assert match is not None, "the page has no data element"
    payload: dict[str, Any] = json.loads(match.group(1))
    return payload


def _record(name: str, decision: str, class_name: str = "Conv2d", **extra: Any) -> LayerRecord:
    code = {EXCLUDED: "QS101", NOT_CANDIDATE: "QS001"}.get(decision)
    check = {EXCLUDED: "not-executed", NOT_CANDIDATE: "not-a-candidate"}.get(decision)
    fields: dict[str, Any] = {
        "name": name,
        "class_name": class_name,
        "layer_type": class_name if decision != NOT_CANDIDATE else None,
        "op_types": ("Conv",),
        "nodes": (f"/{name}/Conv",),
        "weight_shape": (8, 8, 3, 3),
        "decision": decision,
        "code": code,
        "check": check,
        "reason": f"{name}: the reason of {name}",
    }
    fields.update(extra)
    return LayerRecord(**fields)


def _mixed_report() -> Report:
    """Every decision, advisories, inferred facts, nested blocks, and hostile strings from the 'model'."""
    layers = (
        _record(
            "", NOT_CANDIDATE, class_name="Net", reason="<root>: a functional F.linear in the root's forward"
        ),
        _record("stem", QUANTIZE, advisories=(Advisory("QS201", "small-cin", "stem: Cin = 3 <= 16"),)),
        _record("blocks.0.conv", QUANTIZE),
        _record("blocks.0.proj", EXCLUDED),
        _record(
            "blocks.1.conv",
            SKIPPED,
            reason="blocks.1.conv: retrain_enable false (skip_layers 'blocks.1.conv')",
        ),
        _record("blocks.1.attn", NOT_CANDIDATE, class_name="MultiheadAttention"),
        _record(
            "blocks.1.attn.out_proj",
            NOT_CANDIDATE,
            class_name="NonDynamicallyQuantizableLinear",
            inferred=(Inferred("class", "Linear", "from its Gemm op"),),
        ),
        _record(HOSTILE, QUANTIZE, class_name=HOSTILE_IMG, reason=f"{HOSTILE}: {HOSTILE_IMG}"),
        _record(HOSTILE_IMG, EXCLUDED, reason=HOSTILE_TEXT),
        _record(f"{HOSTILE_BLOCK}.conv", QUANTIZE),
        _record("head", QUANTIZE, class_name="Linear"),
    )
    note = Finding("QS301", "config-note", Severity.INFO, None, f"a note naming {HOSTILE}")
    producer = Producer(
        "torchscript", 17, "2.13.0", "1.23.2", input_shapes=((1, 3, 32, 32),), export_choice=HOSTILE_TEXT
    )
    return Report(layers, (note,), producer)


def _mixed_config(report: Report) -> dict[str, Any]:
    config: dict[str, Any] = {"version": 1, "batch_num": 1}
    for rec in report.layers:
        if rec.decision in (QUANTIZE, SKIPPED):
            config[rec.name] = {
                "retrain_enable": rec.decision == QUANTIZE,
                "retrain_data_config": {"algo": "ulq_quantize", "dst_type": "INT8"},
                "retrain_weight_config": {"algo": "arq_retrain", "channel_wise": True, "dst_type": "INT8"},
            }
    return config


# ------------------------------------------------------------------------------------------ the page as data


@given(st.text())
def test_embedded_json_has_no_markup_and_round_trips(text: str) -> None:
    embedded = embed_json({"name": text, "list": [text]})
    assert not set("<>&") & set(embedded)
    assert json.loads(embedded) == {"name": text, "list": [text]}


def test_hostile_strings_are_escaped_everywhere(tmp_path: Path) -> None:
    report = _mixed_report()
    simple = tmp_path / "quant<b>.cfg"
    simple.write_text(f'skip_layers: "{HOSTILE_TEXT}"\n', encoding="utf-8")
    page = report.to_html(_mixed_config(report), simple_config=simple, layer_types=HOSTILE)
    # the page's own two scripts and nothing else: no tag of the data reaches the markup
    assert page.lower().count("<script") == 2
    assert "<img" not in page.lower()
    assert "</details></main>" not in page
    assert "<b>" not in page
    assert "&lt;script&gt;window.__qsPwned = 4&lt;/script&gt;" in page  # the simple config's text, escaped
    assert "quant&lt;b&gt;.cfg" in page
    # the data element holds the report exactly
    payload = _payload(page)
    assert payload["report"] == json.loads(report.to_json())
    assert payload["settings"][HOSTILE]["retrain_enable"] is True


def test_the_page_is_self_contained_and_allows_nothing_else() -> None:
    mixed = _mixed_report()
    report = Report(
        tuple(r for r in mixed.layers if "<" not in r.name + r.class_name), (), Producer("dynamo")
    )
    page = _DATA.sub("", report.to_html(_mixed_config(report)))  # the markup and the script, not the data
    # no address of any kind: nothing to fetch, offline or not
    assert not re.search(r"<[^>]*\b(?:src|href)\s*=", page)
    assert "http://" not in page and "https://" not in page and "url(" not in page
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy is not None
    assert "default-src &#x27;none&#x27;" in policy.group(1)
    assert "unsafe-inline" not in policy.group(1) and "unsafe-eval" not in policy.group(1)


def test_decision_colours_follow_the_terminal_table() -> None:
    colours = decision_colours()
    assert set(colours) == set(DECISIONS)
    assert len(set(colours.values())) == len(DECISIONS)  # four decisions, four colours
    # the same ANSI colour in the terminal gives the same colour on the page
    by_ansi: dict[str, set[str]] = {}
    for decision, css in colours.items():
        by_ansi.setdefault(_COLOURS[decision], set()).add(css)
    assert all(len(css) == 1 for css in by_ansi.values())
    page = _mixed_report().to_html()
    for css in colours.values():
        assert css in page


_PROJECTIONS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)


def _llama_report(blocks: int = 143) -> Report:
    """A Llama-shaped report: seven projections per decoder layer and the head (1,002 layers by default);
    the first projection of every tenth layer is skipped by config, to have something to filter."""
    layers = [
        _record(
            f"model.layers.{i}.{part}",
            SKIPPED if i % 10 == 0 and part == _PROJECTIONS[0] else QUANTIZE,
            class_name="Linear",
        )
        for i in range(blocks)
        for part in _PROJECTIONS
    ]
    layers.append(_record("lm_head", QUANTIZE, class_name="Linear"))
    return Report(tuple(layers), (), Producer("dynamo", 18))


def test_a_thousand_layer_page_stays_under_2_mb() -> None:
    """A 1,002-layer report, with every layer's settings and ONNX node names, fits in 2 MB."""
    report = _llama_report()
    assert len(report.layers) == 1002
    page = report.to_html(_mixed_config(report)).encode("utf-8")
    assert len(_payload(page.decode())["settings"]) == 1002
    assert len(page) < 2 * 1024 * 1024


def test_kinds_and_groups_render_from_the_report_dict() -> None:
    """A post-training report and a distillation report with groups, as their kinds will write them."""
    data = json.loads(_mixed_report().to_json())
    ptq = render_page(
        {**data, "kind": "ptq"},
        {"version": 1, "stem": {"quant_enable": True, "activation_quant_params": {"num_bits": 8}}},
    )
    assert "ptq config</span>" in ptq
    assert _payload(ptq)["settings"] == {
        "stem": {"quant_enable": True, "activation_quant_params": {"num_bits": 8}}
    }
    assert 'id="qs-groups"' not in ptq
    groups = [["stem", "stem_bn", "relu"], ["blocks.0.conv", HOSTILE_IMG, HOSTILE]]
    distill = render_page({**data, "kind": "distill", "groups": groups})
    assert "distill config</span>" in distill
    assert "Groups (2)" in distill
    assert distill.count('<li class="chain">') == 2
    chains = re.findall(r'<li class="chain">(.*?)</li>', distill)
    members = [re.findall(r'class="chain-node"[^>]*>(.*?)</', chain) for chain in chains]
    assert members == [
        ["stem", "stem_bn", "relu"],
        [
            "blocks.0.conv",
            "&lt;img src=x onerror=&quot;window.__qsPwned = 2&quot;&gt;",
            "&lt;script&gt;window.__qsPwned = 1&lt;/script&gt;",
        ],
    ]
    # members that are layers of the report lead to their rows; the others (a BatchNorm, an activation) are text
    assert distill.count('<button type="button" class="chain-node"') == 4
    assert distill.lower().count("<script") == 2


def test_retrain_text_and_json_do_not_change_with_the_page() -> None:
    report = _mixed_report()
    text, as_json = report.to_text(), report.to_json()
    report.to_html(_mixed_config(report))
    assert report.to_text() == text and report.to_json() == as_json


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, dict[str, Any]]:
    """The built-in ResNet-18 example through the library call, and the config it wrote."""
    from analyzer.example import example_model

    config_file = tmp_path_factory.mktemp("resnet") / "config.json"
    model, inputs = example_model()
    report = create_quant_retrain_config(config_file, model, inputs)
    return report, json.loads(config_file.read_text(encoding="utf-8"))


def test_library_page_shows_the_settings_of_the_written_config(resnet: tuple[Report, dict[str, Any]]) -> None:
    report, config = resnet
    payload = _payload(report.to_html(layer_types="documented"))
    assert payload["has_config"] is True
    assert payload["settings"] == {name: config[name] for name in report.quantized}
    assert payload["report"] == report.to_dict()


@pytest.fixture(scope="module")
def resnet_kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Report, dict[str, Any]]]:
    """The built-in ResNet-18 example through the post-training and the distillation calls, and their configs."""
    from analyzer import create_distill_config, create_quant_config
    from analyzer.example import example_model

    folder = tmp_path_factory.mktemp("resnet-kinds")
    out = {}
    for kind, call in (("ptq", create_quant_config), ("distill", create_distill_config)):
        model, inputs = example_model()
        report = call(folder / f"{kind}.json", model, inputs)
        out[kind] = (report, json.loads((folder / f"{kind}.json").read_text(encoding="utf-8")))
    return out


_FACT = re.compile(r"<tr><th>([^<]*)</th><td>(.*?)</td></tr>", re.S)


def _facts(page: str) -> dict[str, str]:
    table = re.search(r'<table class="facts" id="qs-facts">(.*?)</table>', page, re.S)
    assert table is not None
    return dict(_FACT.findall(table.group(1)))


def test_distill_facts_show_the_scalars_and_count_the_groups(
    resnet_kinds: dict[str, tuple[Report, dict[str, Any]]],
) -> None:
    """The facts name the config's top-level scalars; `distill_group`, drawn as the Groups section, is counted."""
    report, config = resnet_kinds["distill"]
    page = report.to_html()
    settings = _facts(page)["config settings"]
    groups = config["distill_group"]
    assert len(groups) == len(report.groups or ()) == 21
    assert settings == (
        f"version: 1, batch_num: {config['batch_num']}, group_size: {config['group_size']}, "
        f"data_dump: {json.dumps(config['data_dump'])}, "
        'distill_group: 21 groups, <a href="#qs-groups">see Groups below</a>'
    )
    assert 'id="qs-groups"' in page
    # no member name of a group in the facts: they are drawn once, below
    assert not any(name in settings for group in groups for name in group)


def test_long_lists_and_objects_of_the_config_are_summarised() -> None:
    data = {**json.loads(_mixed_report().to_json()), "kind": "ptq"}
    short = ["stem", "head"]
    long = [f"blocks.{i}.conv" for i in range(40)]
    page = render_page(data, {"version": 1, "do_fusion": True, "skip_fusion_layers": short})
    assert _facts(page)["config settings"] == (
        "version: 1, do_fusion: true, skip_fusion_layers: [&quot;stem&quot;, &quot;head&quot;]"
    )
    page = render_page(
        data, {"skip_fusion_layers": long, "extra": {f"k{i}": "v" * 20 for i in range(9)}, "tag": HOSTILE}
    )
    assert _facts(page)["config settings"] == (
        "skip_fusion_layers: 40 entries (blocks.0.conv, blocks.1.conv, blocks.2.conv, blocks.3.conv, "
        "blocks.4.conv and 35 more), extra: 9 keys (k0, k1, k2, k3, k4 and 4 more), "
        "tag: &quot;&lt;script&gt;window.__qsPwned = 1&lt;/script&gt;&quot;"
    )
    # a distillation config whose report carries no groups: its list is summarised like any other
    page = render_page({**data, "kind": "distill"}, {"distill_group": [[name] for name in long]})
    assert _facts(page)["config settings"].startswith(
        "distill_group: 40 entries ([&quot;blocks.0.conv&quot;]"
    )
    assert '<section id="qs-groups"' not in page and '<a href="#qs-groups"' not in page


@pytest.mark.parametrize("kind", ["ptq", "distill"])
def test_the_fixed_layer_types_of_a_kind_are_shown(
    kind: str, resnet_kinds: dict[str, tuple[Report, dict[str, Any]]]
) -> None:
    from analyzer.kinds import kind_of

    report, _config = resnet_kinds[kind]
    fixed = f"{', '.join(kind_of(kind).select_types(None))} (fixed by the {kind} config)"
    # whatever the caller passes (the command line passes its --layer-types default): the kind's types rule
    for passed in (None, "documented"):
        assert _facts(report.to_html(layer_types=passed))["layer types"] == fixed
    if kind == "distill":
        assert fixed == "Conv2d, Linear (fixed by the distill config)"
    else:
        assert set(kind_of(kind).select_types(None)) >= {"Conv2d", "Linear", "LSTM", "GRU", "AvgPool2d"}


def test_retrain_layer_types_are_the_runs_or_not_recorded() -> None:
    report = _mixed_report()
    assert _facts(report.to_html())["layer types"] == "not recorded"
    assert _facts(report.to_html(layer_types="amct-latest"))["layer types"] == "amct-latest"
    assert _facts(report.to_html(layer_types=("Linear", "Conv2d")))["layer types"] == "Linear, Conv2d"


def test_cli_explain_of_a_post_training_config_shows_its_fixed_types(
    small_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analyzer.kinds import kind_of

    out = tmp_path / "report.html"
    assert main(["explain", str(small_onnx), "--kind", "ptq", "--format", "html", "-o", str(out)]) == 0
    capsys.readouterr()
    facts = _facts(out.read_text(encoding="utf-8"))
    assert facts["kind"] == "ptq"
    assert facts["layer types"] == f"{', '.join(kind_of('ptq').select_types(None))} (fixed by the ptq config)"


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model exported to a file (TorchScript: the quick exporter), for the command line."""
    import torch
    from torch import nn

    from graph import export_onnx

    folder = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 4)
    )
    written = export_onnx(model, (torch.randn(1, 3, 8, 8),), folder / "net.onnx", exporter="torchscript")
    return Path(written.onnx_file)


def test_cli_explain_writes_the_page(
    small_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analyzer.api import analyze_onnx
    from graph.mapping import default_mapping_path

    simple = tmp_path / "quant.cfg"
    simple.write_text('skip_layers: "2"\n', encoding="utf-8")
    out = tmp_path / "report.html"
    assert (
        main(["explain", str(small_onnx), "--simple-config", str(simple), "--format", "html", "-o", str(out)])
        == 0
    )
    assert capsys.readouterr().out.startswith(
        f"wrote {out}: 2 layers quantized, 0 excluded, 1 skipped by config"
    )
    page = out.read_text(encoding="utf-8")
    report, config_text = analyze_onnx(small_onnx, default_mapping_path(small_onnx), simple)
    payload = _payload(page)
    assert payload["report"] == report.to_dict()
    config = json.loads(config_text)
    assert payload["settings"] == {name: config[name] for name in ("0", "2", "4")}
    assert payload["settings"]["2"]["retrain_enable"] is False
    assert "skip_layers: &quot;2&quot;" in page  # the simple config, shown as written
    assert "<td>documented</td>" in page
    # without -o the page goes to stdout, the same page
    assert main(["explain", str(small_onnx), "--simple-config", str(simple), "--format", "html"]) == 0
    assert capsys.readouterr().out == page


# ------------------------------------------------------------------------------------------ in the browser

_NO_BROWSER = browser.missing()
needs_browser = pytest.mark.skipif(_NO_BROWSER is not None, reason=f"no browser: {_NO_BROWSER}")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if _NO_BROWSER is not None:
        pytest.skip(f"no browser: {_NO_BROWSER}")
    with browser.chromium() as driver:
        yield driver


def _open(driver: Any, page: str, folder: Path, name: str = "report.html") -> list[dict[str, Any]]:
    """Load `page` from a file, wait until its script has built the tree; return the console entries."""
    from selenium.webdriver.support.ui import WebDriverWait

    path = folder / name
    path.write_text(page, encoding="utf-8")
    driver.get_log("browser")  # forget what earlier pages logged
    driver.get(path.as_uri())
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.body.dataset.ready === 'true'")
    )
    entries: list[dict[str, Any]] = driver.get_log("browser")
    return entries


_VISIBLE = """
return Array.from(document.querySelectorAll('#qs-tree .row'))
  .filter(r => r.getClientRects().length > 0)
  .map(r => r.dataset.name);
"""


def _visible(driver: Any) -> list[str]:
    names: list[str] = driver.execute_script(_VISIBLE)
    return names


@needs_browser
def test_resnet_page_loads_clean_and_its_counts_are_the_reports(
    chromium: Any, resnet: tuple[Report, dict[str, Any]], tmp_path: Path
) -> None:
    report, _config = resnet
    console = _open(chromium, report.to_html(layer_types="documented"), tmp_path)
    assert [e for e in console if e["level"] in ("SEVERE", "WARNING")] == []
    counts = chromium.execute_script(
        """
        const root = document.querySelector('#qs-root > summary');
        const badges = {};
        for (const b of root.querySelectorAll('.badge')) badges[b.dataset.decision] = Number(b.dataset.count);
        const filters = {};
        for (const c of document.querySelectorAll('#qs-controls .count')) filters[c.dataset.decision] = Number(c.textContent);
        return {total: root.querySelector('.total').textContent, badges: badges, filters: filters,
                rows: document.querySelectorAll('#qs-tree .row').length,
                status: document.getElementById('qs-status').textContent,
                summary: document.getElementById('qs-summary').textContent};
        """
    )
    decisions = report.summary["decisions"]
    assert counts["rows"] == len(report.layers) == 21
    assert counts["total"] == f"{len(report.layers)} layers"
    assert counts["badges"] == {d: n for d, n in decisions.items() if n}
    assert counts["filters"] == decisions
    assert counts["status"] == f"{len(report.layers)} layers"
    assert counts["summary"] == report.summary_line()
    # each block's count is the number of layers under it
    blocks = chromium.execute_script(
        "return Array.from(document.querySelectorAll('details.block[data-path]')).filter(d => d.dataset.path)"
        ".map(d => [d.dataset.path, d.querySelector(':scope > summary .total').textContent]);"
    )
    for path, total in blocks:
        under = [r for r in report.layers if r.name.startswith(path + ".")]
        assert total == f"{len(under)} layer{'s' if len(under) != 1 else ''}", path
    assert {path for path, _ in blocks} >= {"layer1", "layer1.0", "layer4.1"}


@needs_browser
def test_search_and_class_filter_change_what_is_shown(
    chromium: Any, resnet: tuple[Report, dict[str, Any]], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    report, _config = resnet
    _open(chromium, report.to_html(), tmp_path)
    assert sorted(_visible(chromium)) == sorted(r.name for r in report.layers)
    chromium.find_element(By.ID, "qs-search").send_keys("layer3.0")
    expected = sorted(r.name for r in report.layers if "layer3.0" in r.name)
    assert len(expected) == 3
    assert sorted(_visible(chromium)) == expected
    assert chromium.find_element(By.ID, "qs-status").text == f"showing 3 of {len(report.layers)} layers"
    chromium.find_element(By.ID, "qs-search").clear()
    chromium.execute_script("document.getElementById('qs-search').dispatchEvent(new Event('input'))")
    Select(chromium.find_element(By.ID, "qs-class")).select_by_value("Linear")
    assert _visible(chromium) == ["fc"]


@needs_browser
def test_decision_and_code_filters_and_the_details_of_a_layer(chromium: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    report = _mixed_report()
    config = _mixed_config(report)
    console = _open(chromium, report.to_html(config), tmp_path)
    assert [e for e in console if e["level"] == "SEVERE"] == []
    everyone = sorted(r.name for r in report.layers)
    assert sorted(_visible(chromium)) == everyone
    chromium.find_element(By.CSS_SELECTOR, f'input[name="decision"][value="{QUANTIZE}"]').click()
    assert sorted(_visible(chromium)) == sorted(r.name for r in report.layers if r.decision != QUANTIZE)
    chromium.find_element(By.CSS_SELECTOR, f'input[name="decision"][value="{QUANTIZE}"]').click()
    Select(chromium.find_element(By.ID, "qs-code")).select_by_value("QS201")  # an advisory's code
    assert _visible(chromium) == ["stem"]
    Select(chromium.find_element(By.ID, "qs-code")).select_by_value("QS101")
    assert sorted(_visible(chromium)) == sorted(r.name for r in report.layers if r.code == "QS101")
    Select(chromium.find_element(By.ID, "qs-code")).select_by_value("")
    # the details of a skipped layer: its reason and its settings as written in the config
    row = chromium.find_element(By.CSS_SELECTOR, '.row[title="blocks.1.conv"]')
    row.click()
    detail = chromium.execute_script(
        """
        const box = arguments[0].nextElementSibling;
        const out = {};
        const dts = box.querySelectorAll('dt');
        for (const dt of dts) out[dt.textContent] = dt.nextElementSibling.textContent;
        return out;
        """,
        row,
    )
    assert detail["reason"] == "blocks.1.conv: retrain_enable false (skip_layers 'blocks.1.conv')"
    assert json.loads(detail["settings in the config"]) == config["blocks.1.conv"]
    assert detail["decision"].endswith(SKIPPED)
    stem = chromium.find_element(By.CSS_SELECTOR, '.row[title="stem"]')
    stem.click()
    advisories = chromium.execute_script("return arguments[0].nextElementSibling.textContent", stem)
    assert "QS201 small-cin: stem: Cin = 3 <= 16" in advisories
    proj = chromium.find_element(By.CSS_SELECTOR, '.row[title="blocks.1.attn.out_proj"]')
    proj.click()
    inferred = chromium.execute_script("return arguments[0].nextElementSibling.textContent", proj)
    assert "class Linear (from its Gemm op)" in inferred and "not in the config" in inferred


@needs_browser
def test_hostile_names_stay_text(chromium: Any, tmp_path: Path) -> None:
    report = _mixed_report()
    simple = tmp_path / "quant.cfg"
    simple.write_text(f'skip_layers: "{HOSTILE_TEXT}"\n', encoding="utf-8")
    page = report.to_html(_mixed_config(report), simple_config=simple, layer_types=HOSTILE)
    groups = {**report.to_dict(), "kind": "distill", "groups": [[HOSTILE, HOSTILE_IMG]]}
    for name, text in (("report.html", page), ("distill.html", render_page(groups))):
        _open(chromium, text, tmp_path, name)
        seen = chromium.execute_script(
            """
            for (const row of document.querySelectorAll('#qs-tree .row')) row.click();
            for (const b of document.querySelectorAll('button.chain-node')) b.click();
            return {pwned: typeof window.__qsPwned, scripts: document.scripts.length,
                    images: document.images.length,
                    names: Array.from(document.querySelectorAll('#qs-tree .row')).map(r => r.dataset.name),
                    text: document.body.textContent,
                    facts: document.getElementById('qs-facts').textContent};
            """
        )
        assert seen["pwned"] == "undefined", name
        assert seen["scripts"] == 2 and seen["images"] == 0, name
        assert set(seen["names"]) == {r.name for r in report.layers}, name
        assert HOSTILE in seen["text"] and HOSTILE_IMG in seen["text"], name
        if name == "report.html":  # the exporter's reason and the simple config's text, as text
            assert seen["facts"].count(HOSTILE_TEXT) == 2


@needs_browser
def test_distill_groups_are_chains_that_lead_to_their_layers(chromium: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    data = {
        **_mixed_report().to_dict(),
        "kind": "distill",
        "groups": [["stem", "stem_bn", "relu"], ["blocks.0.conv", "head"]],
    }
    # a field the page does not know (a distillation record's own) is shown too
    for layer in data["layers"]:
        if layer["name"] == "blocks.0.conv":
            layer["group_reason"] = "a unit: conv, then head"
    _open(chromium, render_page(data), tmp_path)
    chains = chromium.execute_script(
        "return Array.from(document.querySelectorAll('#qs-groups .chain'))"
        ".map(c => Array.from(c.querySelectorAll('.chain-node')).map(n => n.textContent));"
    )
    assert chains == data["groups"]
    chromium.execute_script("for (const d of document.querySelectorAll('details.block')) d.open = false;")
    chromium.find_element(By.CSS_SELECTOR, 'button.chain-node[data-layer="blocks.0.conv"]').click()
    assert "blocks.0.conv" in _visible(chromium)
    group = chromium.execute_script(
        "const box = document.querySelector('.row[title=\"blocks.0.conv\"]').nextElementSibling;"
        "return Array.from(box.querySelectorAll('dt')).find(d => d.textContent === 'group').nextElementSibling.textContent;"
    )
    assert group == "#2: blocks.0.conv \u2192 head"
    own = chromium.execute_script(
        "const box = document.querySelector('.row[title=\"blocks.0.conv\"]').nextElementSibling;"
        "return Array.from(box.querySelectorAll('dt')).find(d => d.textContent === 'group reason').nextElementSibling.textContent;"
    )
    assert own == "a unit: conv, then head"


@needs_browser
def test_a_large_model_page_shows_what_the_filters_find(chromium: Any, tmp_path: Path) -> None:
    """The blocks of a 1,002-layer page are filled when opened; search, filters and groups still reach every layer."""
    from selenium.webdriver.common.by import By

    report = _llama_report()
    deep = ["model.layers.137.self_attn.v_proj", "model.layers.137.self_attn.o_proj", "lm_head"]
    data = {**report.to_dict(), "kind": "distill", "groups": [deep]}
    console = _open(chromium, render_page(data, _mixed_config(report)), tmp_path)
    assert [e for e in console if e["level"] == "SEVERE"] == []
    root = chromium.execute_script(
        "return Array.from(document.querySelectorAll('#qs-root > summary .badge'))"
        ".map(b => [b.dataset.decision, Number(b.dataset.count)]);"
    )
    assert dict(root) == {d: n for d, n in report.summary["decisions"].items() if n}
    search = chromium.find_element(By.ID, "qs-search")
    search.send_keys("layers.77.mlp")
    assert sorted(_visible(chromium)) == [
        f"model.layers.77.mlp.{p}" for p in ("down_proj", "gate_proj", "up_proj")
    ]
    search.clear()
    chromium.execute_script("document.getElementById('qs-search').dispatchEvent(new Event('input'))")
    chromium.find_element(By.CSS_SELECTOR, f'input[name="decision"][value="{QUANTIZE}"]').click()
    assert sorted(_visible(chromium)) == sorted(r.name for r in report.layers if r.decision == SKIPPED)
    assert len(report.skipped) == 15
    chromium.find_element(By.CSS_SELECTOR, f'input[name="decision"][value="{QUANTIZE}"]').click()
    chromium.find_element(By.ID, "qs-collapse").click()
    chromium.find_element(By.CSS_SELECTOR, f'button.chain-node[data-layer="{deep[0]}"]').click()
    assert deep[0] in _visible(chromium)
    chromium.find_element(By.ID, "qs-expand").click()
    assert sorted(_visible(chromium)) == sorted(r.name for r in report.layers)


def test_counts_of_the_mixed_report() -> None:
    """The synthetic report used above has every decision (so the filters have something to filter)."""
    assert set(Counter(r.decision for r in _mixed_report().layers)) == set(DECISIONS)


_CHAIN_BOXES = """
return Array.from(document.querySelectorAll('#qs-groups .chain')).map(c => Array.from(c.children).map(e => {
  const r = e.getBoundingClientRect();
  return {cls: e.className, text: e.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom};
}));
"""


@needs_browser
def test_group_chains_space_their_members_and_arrows(
    chromium: Any, resnet_kinds: dict[str, tuple[Report, dict[str, Any]]], tmp_path: Path
) -> None:
    """Between two members of a chain an arrow of its own, clear of both boxes (ResNet-18's 21 distill groups)."""
    report, _config = resnet_kinds["distill"]
    console = _open(chromium, report.to_html(), tmp_path)
    assert [e for e in console if e["level"] in ("SEVERE", "WARNING")] == []
    chains = chromium.execute_script(_CHAIN_BOXES)
    assert [[b["text"] for b in chain if b["cls"] == "chain-node"] for chain in chains] == [
        list(group) for group in report.groups or ()
    ]
    for chain in chains:
        assert [b["cls"] for b in chain] == ["chain-node", "chain-arrow"] * (len(chain) // 2) + ["chain-node"]
        for arrow in chain[1::2]:
            assert arrow["text"] == "\u2192" and arrow["right"] - arrow["left"] > 4
        for before, after in itertools.pairwise(chain):
            assert before["top"] < after["bottom"] and after["top"] < before["bottom"]  # on one line
            assert after["left"] - before["right"] >= 3, (before, after)  # clear of each other


@needs_browser
def test_a_distill_layer_shows_one_group_line(
    chromium: Any, resnet_kinds: dict[str, tuple[Report, dict[str, Any]]], tmp_path: Path
) -> None:
    report, _config = resnet_kinds["distill"]
    _open(chromium, report.to_html(), tmp_path)
    lines = chromium.execute_script(
        "document.querySelector('.row[title=\"conv1\"]').click();"
        "const box = document.querySelector('.row[title=\"conv1\"]').nextElementSibling;"
        "return Array.from(box.querySelectorAll('dt')).filter(d => d.textContent === 'group')"
        ".map(d => d.nextElementSibling.textContent);"
    )
    assert lines == [report.record("conv1").group]
    assert lines[0].startswith("in distill_group[0] [conv1, bn1, relu]")


@needs_browser
def test_a_post_training_layer_shows_its_settings_whole(
    chromium: Any, resnet_kinds: dict[str, tuple[Report, dict[str, Any]]], tmp_path: Path
) -> None:
    """A calibration entry (activation and weight parameters) is longer than a retrain one: no inner scroll box."""
    report, config = resnet_kinds["ptq"]
    _open(chromium, report.to_html(), tmp_path)
    assert _settings_box(chromium, "fc")["text"] == json.dumps(config["fc"], indent=2)
    # however long an entry is
    data = {**json.loads(_mixed_report().to_json()), "kind": "ptq"}
    entry = {"quant_enable": True, **{f"param_{i}": [i, i + 1] for i in range(30)}}
    _open(chromium, render_page(data, {"version": 1, "head": entry}), tmp_path)
    shown = _settings_box(chromium, "head")
    assert json.loads(shown["text"]) == entry
    assert shown["client"] > 600


def _settings_box(driver: Any, name: str) -> dict[str, Any]:
    """The text of layer `name`'s settings as its details show them; the box must show it all (no inner scroll)."""
    shown: dict[str, Any] = driver.execute_script(
        "const row = document.querySelector('.row[title=\"' + arguments[0] + '\"]');"
        "row.click();"
        "const dt = Array.from(row.nextElementSibling.querySelectorAll('dt'))"
        ".find(d => d.textContent === 'settings in the config');"
        "const pre = dt.nextElementSibling.querySelector('pre');"
        "return {text: pre.textContent, scroll: pre.scrollHeight, client: pre.clientHeight};",
        name,
    )
    assert shown["scroll"] <= shown["client"], shown
    return shown


def test_many_groups_start_folded() -> None:
    """ResNet-18's 21 groups are open; a large model's hundred start folded, so that the tree stays near the top."""
    data = json.loads(_llama_report().to_json())
    for count, opened in ((21, True), (143, False)):
        groups = [[f"model.layers.{i}.self_attn.q_proj"] for i in range(count)]
        page = render_page({**data, "kind": "distill", "groups": groups}, {"distill_group": groups})
        box = re.search(r'<section id="qs-groups"><details class="groups-box"( open)?>', page)
        assert box is not None and (box.group(1) is not None) is opened
        assert f"distill_group: {count} groups" in _facts(page)["config settings"]


@needs_browser
def test_folded_groups_open_from_the_facts_and_leave_the_tree_in_view(chromium: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    report = _llama_report()
    groups = [
        [f"model.layers.{i}.self_attn.q_proj", f"model.layers.{i}.self_attn.k_proj"] for i in range(143)
    ]
    data = {**report.to_dict(), "kind": "distill", "groups": groups}
    _open(chromium, render_page(data, {"version": 1, "distill_group": groups}), tmp_path)
    where = (
        "return [document.querySelector('#qs-groups > details').open, window.innerHeight,"
        " document.getElementById('qs-root').getBoundingClientRect().top];"
    )
    opened, height, tree_top = chromium.execute_script(where)
    assert not opened and tree_top < height  # the tree starts in the first screen
    assert chromium.execute_script("return document.querySelectorAll('#qs-groups .chain-node').length") == 286
    chromium.find_element(By.CSS_SELECTOR, 'a[href="#qs-groups"]').click()
    opened, height, tree_top = chromium.execute_script(where)
    assert opened and tree_top > height
    chromium.find_element(
        By.CSS_SELECTOR, 'button.chain-node[data-layer="model.layers.99.self_attn.k_proj"]'
    ).click()
    assert "model.layers.99.self_attn.k_proj" in _visible(chromium)
