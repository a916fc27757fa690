"""Offline analysis (SPEC section 6): export once with `export_onnx`, analyse the files later with
`create_quant_retrain_config_from_onnx`, without torch, without weights, and get the library call's bytes.

Also every way the files can be wrong: a mapping that disagrees with the graph, a TorchScript file without
its mapping, a truncated ONNX file, the mapping of another model. Each is an `InputFileError` (a ValueError)
naming what is wrong, and no config is written.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from torch import nn

import graph.mapping
import schemas
from analyzer import InputFileError, create_quant_retrain_config, create_quant_retrain_config_from_onnx
from graph.export import OnnxExport, default_mapping_path, export_onnx
from graph.load import hook_sources
from graph.mapping import MAPPING_SCHEMA
from tests.cases import ALL_CASES, CASES_BY_NAME, COMPUTED_WEIGHT_CASES, Case
from tests.torch_support import skip_before_torch, skip_without_dynamo

try:
    import analyzer.simple_config  # noqa: F401

    HAS_SIMPLE_CONFIG = True
except ImportError:  # the simple config not there yet: cases with a cfg are skipped
    HAS_SIMPLE_CONFIG = False

REPO = Path(__file__).resolve().parent.parent


class Exports:
    """Each (model, inputs, exporter) exported once for the whole module, into one temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._done: dict[tuple[Any, ...], OnnxExport] = {}

    def get(self, case: Case, exporter: str) -> OnnxExport:
        key = (case.factory, case.shapes, exporter, case.kind == "distill")
        if exporter == "dynamo":
            skip_without_dynamo()
        if key not in self._done:
            folder = self.root / f"{case.name}-{exporter}"
            # the distill groups need BatchNorm nodes: a TorchScript file is written without constant folding
            folding = case.kind != "distill"
            self._done[key] = export_onnx(
                case.model(),
                case.inputs(),
                folder / "model.onnx",
                exporter=exporter,
                constant_folding=folding,
            )
        return self._done[key]


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Exports:
    return Exports(tmp_path_factory.mktemp("exports"))


def _cfg(case: Case) -> str | None:
    path = case.cfg_path()
    return str(path) if path is not None else None


VARIANTS = (("dynamo", True), ("dynamo", False), ("torchscript", True))  # (exporter, with the mapping file)
EQUIVALENCE = [
    pytest.param(
        case, exporter, with_mapping, id=f"{case.name}-{exporter}-{'mapping' if with_mapping else 'metadata'}"
    )
    for case in ALL_CASES
    for exporter, with_mapping in VARIANTS
]


@pytest.mark.parametrize(("case", "exporter", "with_mapping"), EQUIVALENCE)
def test_offline_config_is_the_library_config(
    case: Case, exporter: str, with_mapping: bool, exports: Exports, tmp_path: Path
) -> None:
    """The golden files are what `create_quant_retrain_config` writes (tests/test_reference_cases.py)."""
    if case.cfg is not None and not HAS_SIMPLE_CONFIG:
        pytest.skip("analyzer.simple_config is not available yet")
    files = exports.get(case, exporter)
    mapping = str(files.mapping_file) if with_mapping else None
    out = tmp_path / "config.json"
    if case.error is not None:
        with pytest.raises(ValueError, match=case.error):
            case.call_offline(str(out), str(files.onnx_file), mapping)
        assert not out.exists()
        return
    report = case.call_offline(str(out), str(files.onnx_file), mapping)
    assert out.read_text(encoding="utf-8") == case.golden_text(metadata_only=not with_mapping)
    assert report.config_file == str(out)


# --- models beyond the reference set, compared with the library call directly -------------------------------


class RegisteredBackwards(nn.Module):
    """Registration order (named_modules) differs from call order: the config follows named_modules."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 4)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1))
        self.stem = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x)).mean((2, 3)))


class DeepCopies(nn.Module):
    """Layers deep-copied from one another hold equal values: the TorchScript exporter merges their
    initializers, which is not a shared weight (the parameters are distinct)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 16)
        self.fc2 = copy.deepcopy(self.fc1)
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.conv2 = copy.deepcopy(nn.Conv2d(8, 8, 3))
        self.conv3 = copy.deepcopy(self.conv2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc2(torch.relu(self.fc1(x))), self.conv3(self.conv2(self.conv1(y)))


EXTRA: dict[str, tuple[Callable[[], nn.Module], tuple[tuple[int, ...], ...]]] = {
    "registered_backwards": (RegisteredBackwards, ((1, 3, 8, 8),)),
    "deep_copies": (DeepCopies, ((2, 16), (1, 3, 12, 12))),
}
EXTRA_PARAMS = [
    pytest.param(
        name, exporter, with_mapping, id=f"{name}-{exporter}-{'mapping' if with_mapping else 'metadata'}"
    )
    for name in EXTRA
    for exporter, with_mapping in VARIANTS
]


@pytest.mark.parametrize(("name", "exporter", "with_mapping"), EXTRA_PARAMS)
def test_offline_equals_library_beyond_the_reference(
    name: str, exporter: str, with_mapping: bool, tmp_path: Path
) -> None:
    factory, shapes = EXTRA[name]
    torch.manual_seed(0)
    model = factory()
    inputs = tuple(torch.randn(*shape) for shape in shapes)
    library = tmp_path / "library.json"
    offline = tmp_path / "offline.json"
    create_quant_retrain_config(str(library), model, inputs)
    files = export_onnx(model, inputs, tmp_path / "m.onnx", exporter=exporter)
    mapping = str(files.mapping_file) if with_mapping else None
    create_quant_retrain_config_from_onnx(str(offline), str(files.onnx_file), mapping)
    assert offline.read_bytes() == library.read_bytes()
    layers = list(json.loads(library.read_text()))[2:]
    expected = {
        "registered_backwards": ["head", "body.0", "body.2", "stem"],
        "deep_copies": ["fc1", "fc2", "conv1", "conv2", "conv3"],
    }
    assert layers == expected[name]


def test_torchscript_file_merges_equal_weights_and_the_mapping_tells_them_apart(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = DeepCopies()
    files = export_onnx(
        model, (torch.randn(2, 16), torch.randn(1, 3, 12, 12)), tmp_path / "m.onnx", exporter="torchscript"
    )
    proto = onnx.load(str(files.onnx_file), load_external_data=False)
    aliases = {node.output[0]: node.input[0] for node in proto.graph.node if node.op_type == "Identity"}
    assert aliases.get("fc2.weight") == "fc1.weight"  # the exporter merged them: one initializer, two readers
    mapping = json.loads(files.mapping_file.read_text())
    assert mapping["tied_parameters"] == []
    assert mapping["initializers"]["fc1.weight"]["params"] == ["fc1.weight", "fc2.weight"]


def test_torchscript_file_has_batchnorm_folded_and_is_analysed_like_the_model(
    exports: Exports, tmp_path: Path
) -> None:
    case = CASES_BY_NAME["resnet18_hand"]
    files = exports.get(case, "torchscript")
    proto = onnx.load(str(files.onnx_file), load_external_data=False)
    assert not [node for node in proto.graph.node if node.op_type == "BatchNormalization"]
    convs = [node for node in proto.graph.node if node.op_type == "Conv"]
    assert len(convs) == 20 and all(node.input[1].startswith("onnx::Conv_") for node in convs)
    mapping = json.loads(files.mapping_file.read_text())
    assert mapping["nodes"][convs[0].name]["module"] == "conv1"
    assert mapping["initializers"][convs[0].input[1]]["params"] == []  # a folded tensor is no parameter
    out = tmp_path / "c.json"
    create_quant_retrain_config_from_onnx(out, files.onnx_file, files.mapping_file)
    assert out.read_text(encoding="utf-8") == case.golden_text()


# --- weights computed before the op (weight norm, spectral norm, pruning masks) ---------------------------

# what a TorchScript file alone shows of them: the folded weight (weight norm, pruning) or the computation of
# weight_orig / sigma (spectral norm); which parameters a folded weight came from is only in the mapping, so
# two layers computed from one source (wn_shared_source) and the parametrized classes need it, and so do the
# RNN order (a_wn_mix_all, as a_mix_all) and a module's first name when it ran under another (a_wn_tcn_block)
COMPUTED_WITHOUT_MAPPING = [
    case.name
    for case in COMPUTED_WEIGHT_CASES
    if case.name not in ("wn_shared_source", "a_wn_mix_all", "parametrized_cfg_simple", "a_wn_tcn_block")
]


@pytest.mark.parametrize("name", COMPUTED_WITHOUT_MAPPING)
def test_torchscript_file_with_computed_weights_without_its_mapping(
    name: str, exports: Exports, tmp_path: Path
) -> None:
    case = CASES_BY_NAME[name]
    files = exports.get(case, "torchscript")
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(files.onnx_file, lonely)
    out = tmp_path / "config.json"
    create_quant_retrain_config_from_onnx(out, lonely, None, _cfg(case), layer_types=case.layer_types)
    assert out.read_text(encoding="utf-8") == case.golden_text()


def test_mapping_records_what_a_folded_weight_was_computed_from(exports: Exports) -> None:
    files = exports.get(CASES_BY_NAME["wn_shared_source"], "torchscript")
    data = json.loads(files.mapping_file.read_text())
    assert data["version"] == 3
    computed = {
        tuple(entry["computed_from"]) for entry in data["initializers"].values() if "computed_from" in entry
    }
    # fc_b's weight_v is fc_a's Parameter (a tie): the mapping names it as fc_b has it, and the ties say the rest
    assert computed == {("fc_a.weight_g", "fc_a.weight_v"), ("fc_b.weight_g", "fc_b.weight_v")}
    assert ["fc_a.weight_v", "fc_b.weight_v"] in data["tied_parameters"]
    plain = json.loads(
        exports.get(CASES_BY_NAME["shared_weight_linear"], "torchscript").mapping_file.read_text()
    )
    assert not [entry for entry in plain["initializers"].values() if "computed_from" in entry]


def test_version_2_mapping_of_a_computed_weight_is_still_read(exports: Exports, tmp_path: Path) -> None:
    """An older mapping has no computed_from: read as before (the layers are kept; which parameters a folded
    weight came from is then unknown)."""
    case = CASES_BY_NAME["wn_b_w4_odd_cin"]
    files = exports.get(case, "torchscript")
    data = json.loads(files.mapping_file.read_text())
    data["version"] = 2
    for entry in data["initializers"].values():
        entry.pop("computed_from", None)
    old = tmp_path / "v2.mapping.json"
    old.write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "config.json"
    report = create_quant_retrain_config_from_onnx(out, files.onnx_file, old, _cfg(case))
    assert out.read_text(encoding="utf-8") == case.golden_text()
    assert not [a for a in report.record("conv1").advisories if a.code == "QS002"]


def test_folded_hook_weights_are_told_from_other_folded_tensors() -> None:
    """In a file from torch's default dynamo export the optimizer folds a weight hook's computation into one
    constant and lists what it came from (`folded_from`); a BatchNorm folded into a conv, or a Linear weight
    transposed for MatMul, is folded too and is no computed weight."""
    targets = {"fc_a.weight_g", "fc_b.weight_v", "fc.weight", "conv.weight", "bn.weight", "bn.running_var"}
    targets |= {"c.weight_orig", "c.weight_mask"}
    assert hook_sources(["div", "fc_a.weight_g", "fc_b.weight_v", "val_0"], targets) == (
        "fc_a.weight_g",
        "fc_b.weight_v",
    )
    assert hook_sources(["c.weight_mask", "c.weight_orig"], targets) == ("c.weight_mask", "c.weight_orig")
    assert hook_sources(["conv.weight", "bn.weight", "bn.running_var"], targets) == ()
    assert hook_sources(["fc.weight"], targets) == ()
    assert hook_sources(["fc_a.weight_g"], targets) == ()


def _computed_reasons(report: Any, layer: str) -> list[str]:
    return [a.reason for a in report.record(layer).advisories if a.code == "QS002"]


@pytest.mark.parametrize(("exporter", "with_mapping"), VARIANTS)
def test_report_says_what_a_weight_is_computed_from(
    exporter: str, with_mapping: bool, exports: Exports, tmp_path: Path
) -> None:
    case = CASES_BY_NAME["sn_cfg_simple_default"]
    files = exports.get(case, exporter)
    report = create_quant_retrain_config_from_onnx(
        tmp_path / "c.json", files.onnx_file, files.mapping_file if with_mapping else None
    )
    assert _computed_reasons(report, "up") == ["up: weight computed from weight_orig, weight_u, weight_v"]
    case = CASES_BY_NAME["prune_b_w4_linear"]
    files = exports.get(case, exporter)
    report = create_quant_retrain_config_from_onnx(
        tmp_path / "c.json", files.onnx_file, files.mapping_file if with_mapping else None, _cfg(case)
    )
    assert _computed_reasons(report, "fc_in7") == ["fc_in7: weight computed from weight_mask, weight_orig"]


def test_library_report_says_what_a_weight_is_computed_from(tmp_path: Path) -> None:
    case = CASES_BY_NAME["wn_b_w4_odd_cin"]
    report = create_quant_retrain_config(tmp_path / "c.json", case.model(), case.inputs(), _cfg(case))
    assert _computed_reasons(report, "conv1") == ["conv1: weight computed from weight_g, weight_v"]
    assert report.record("conv1").int4_packing == "Cin = 3 is odd, INT4 packs two values along Cin"
    assert out_text(tmp_path / "c.json") == case.golden_text()


def out_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# --- no torch, no weights ---------------------------------------------------------------------------------

NO_TORCH_SITE = """\
import sys
# this environment has no torch: every import of these fails
for name in ("torch", "torchvision", "onnxscript", "onnx_ir"):
    sys.modules[name] = None
"""

NO_TORCH_RUN = """\
import json, sys
from analyzer import create_quant_retrain_config_from_onnx
for out, onnx_file, mapping, cfg in json.loads(sys.argv[1]):
    create_quant_retrain_config_from_onnx(out, onnx_file, mapping, cfg)
try:
    import torch
    print("torch importable")
except ImportError:
    print("torch blocked")
heavy = ("torch", "torchvision", "onnxscript", "onnx_ir")
print(json.dumps(sorted(n for n, m in sys.modules.items() if m is not None and n.split(".")[0] in heavy)))
"""


def test_offline_call_runs_where_torch_cannot_be_imported(exports: Exports, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_TORCH_SITE)
    runs = []
    expected = {}
    cases = [CASES_BY_NAME["resnet18_hand"], CASES_BY_NAME["linear_variants"]]
    if HAS_SIMPLE_CONFIG:
        cases.append(CASES_BY_NAME["cfg_simple"])
    for case in cases:
        for exporter, with_mapping in VARIANTS:
            files = exports.get(case, exporter)
            out = tmp_path / f"{case.name}-{exporter}-{with_mapping}.json"
            mapping = str(files.mapping_file) if with_mapping else None
            runs.append([str(out), str(files.onnx_file), mapping, _cfg(case)])
            expected[out] = case.golden_text()
    # a TorchScript file without its mapping: owners and classes inferred, still without torch
    files = exports.get(CASES_BY_NAME["linear_variants"], "torchscript")
    out = tmp_path / "linear_variants-torchscript-inferred.json"
    runs.append([str(out), str(files.onnx_file), None, None])
    expected[out] = CASES_BY_NAME["linear_variants"].golden_text()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH_RUN, json.dumps(runs)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-2] == "torch blocked"
    assert json.loads(lines[-1]) == []
    for out, text in expected.items():
        assert out.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_deleted_external_data_is_not_needed(exporter: str, exports: Exports, tmp_path: Path) -> None:
    case = CASES_BY_NAME["resnet18_hand"]
    files = exports.get(case, exporter)
    assert files.data_file.exists() and files.data_file.stat().st_size > 40_000_000  # the weights are there
    proto = onnx.load(str(files.onnx_file), load_external_data=False)
    external = [t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert {entry.value for t in external for entry in t.external_data if entry.key == "location"} == {
        files.data_file.name
    }
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(files.onnx_file, alone / files.onnx_file.name)
    shutil.copy(files.mapping_file, alone / files.mapping_file.name)
    assert not (alone / files.data_file.name).exists()
    for mapping in (
        [alone / files.mapping_file.name]
        if exporter == "torchscript"
        else [alone / files.mapping_file.name, None]
    ):
        out = tmp_path / "config.json"
        create_quant_retrain_config_from_onnx(out, alone / files.onnx_file.name, mapping)
        assert out.read_text(encoding="utf-8") == case.golden_text()


# --- files that are wrong: a clear error, and no config written --------------------------------------------


def _assert_refused(tmp_path: Path, onnx_file: Path, mapping: Path | None, *needles: str) -> str:
    """The offline call fails with an InputFileError naming `needles`, and the existing config is untouched."""
    out = tmp_path / "config.json"
    out.write_text("previous")
    with pytest.raises(InputFileError) as info:
        create_quant_retrain_config_from_onnx(out, onnx_file, mapping)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    for needle in needles:
        assert needle in message
    assert out.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".config")) == []
    return message


def _edited_mapping(files: OnnxExport, tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    data = json.loads(files.mapping_file.read_text())
    edit(data)
    path = tmp_path / "edited.mapping.json"
    path.write_text(json.dumps(data))
    return path


def _rename_node(data: dict[str, Any]) -> None:
    data["nodes"] = {
        ("/conv_in/Conv_renamed" if key == "/conv_in/Conv" else key): v for key, v in data["nodes"].items()
    }


def _retype_node(data: dict[str, Any]) -> None:
    data["nodes"]["/conv_reused/Conv"]["op_type"] = "ConvTranspose"


def _reshape_initializer(data: dict[str, Any]) -> None:
    data["initializers"]["conv_in.weight"]["dims"] = [8, 3, 5, 5]


def _drop_node(data: dict[str, Any]) -> None:
    del data["nodes"]["/Relu"]
    data["graph"]["nodes"] -= 1


def _other_digest(data: dict[str, Any]) -> None:
    data["graph"]["digest"] = "0" * 64


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (
            _rename_node,
            ("/conv_in/Conv_renamed", "not in the graph", "'/conv_in/Conv'", "not in the mapping"),
        ),
        (_retype_node, ("/conv_reused/Conv (mapping ConvTranspose, graph Conv)",)),
        (_reshape_initializer, ("conv_in.weight (mapping (8, 3, 5, 5), graph (8, 3, 3, 3))",)),
        (_drop_node, ("'/Relu'", "not in the mapping")),
        (_other_digest, ("digest",)),
    ],
    ids=["renamed-node", "wrong-op-type", "wrong-shape", "missing-node", "other-digest"],
)
def test_mismatched_mapping_names_the_entries(
    edit: Callable[[dict[str, Any]], None], needles: tuple[str, ...], exports: Exports, tmp_path: Path
) -> None:
    files = exports.get(CASES_BY_NAME["reused_conv"], "torchscript")
    mapping = _edited_mapping(files, tmp_path, edit)
    message = _assert_refused(tmp_path, files.onnx_file, mapping, "does not match the ONNX file", *needles)
    assert str(mapping) in message


def test_mapping_of_another_model_is_refused(exports: Exports, tmp_path: Path) -> None:
    onnx_of = exports.get(CASES_BY_NAME["reused_conv"], "torchscript")
    mapping_of = exports.get(CASES_BY_NAME["reflect_conv"], "torchscript")
    _assert_refused(
        tmp_path, onnx_of.onnx_file, mapping_of.mapping_file, "'/conv_reused/Conv'", "'conv_ok.weight'"
    )


def test_mapping_of_another_exporter_is_refused(exports: Exports, tmp_path: Path) -> None:
    case = CASES_BY_NAME["cin3_conv"]
    onnx_of, mapping_of = exports.get(case, "dynamo"), exports.get(case, "torchscript")
    _assert_refused(tmp_path, onnx_of.onnx_file, mapping_of.mapping_file, "not in the graph", "'/conv/Conv'")


def test_torchscript_file_without_mapping_is_analysed_from_its_node_names(
    exports: Exports, tmp_path: Path
) -> None:
    """Without its mapping, a TorchScript file's owners and classes are inferred from the node names and the
    ops, and every layer says so."""
    files = exports.get(CASES_BY_NAME["cin3_conv"], "torchscript")
    lonely = tmp_path / "lonely.onnx"
    shutil.copy(files.onnx_file, lonely)
    out = tmp_path / "config.json"
    report = create_quant_retrain_config_from_onnx(out, lonely)
    assert out.read_text(encoding="utf-8") == CASES_BY_NAME["cin3_conv"].golden_text()
    facts = {(i.fact, i.value) for i in report.record("conv").inferred}
    assert ("class", "Conv2d") in facts and ("name", "conv") in facts
    assert report.summary_line().endswith("; 1 layer rests on inferred facts")


def test_a_mapping_beside_the_file_that_was_not_passed_is_pointed_out(
    exports: Exports, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = exports.get(CASES_BY_NAME["cin3_conv"], "torchscript")
    with caplog.at_level("WARNING", logger="graph.load"):
        create_quant_retrain_config_from_onnx(tmp_path / "c.json", files.onnx_file)
    (message,) = [r.getMessage() for r in caplog.records if r.name == "graph.load"]
    assert "were inferred" in message and str(files.mapping_file) in message
    caplog.clear()
    with caplog.at_level("WARNING", logger="graph.load"):
        create_quant_retrain_config_from_onnx(tmp_path / "c.json", files.onnx_file, files.mapping_file)
    assert not [r for r in caplog.records if r.name == "graph.load"]


def test_file_with_neither_scopes_nor_scoped_names_asks_for_a_mapping(
    exports: Exports, tmp_path: Path
) -> None:
    files = exports.get(CASES_BY_NAME["cin3_conv"], "torchscript")
    proto = onnx.load(str(files.onnx_file), load_external_data=False)
    for position, node in enumerate(proto.graph.node):
        node.name = f"n{position}"
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(proto.SerializeToString())
    _assert_refused(
        tmp_path, plain, None, "no module scopes", "no scope-style node names", "a mapping file is needed"
    )


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.97])
def test_truncated_onnx_is_refused(fraction: float, exports: Exports, tmp_path: Path) -> None:
    files = exports.get(CASES_BY_NAME["cfg_simple_default"], "dynamo")
    content = files.onnx_file.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(content[: int(len(content) * fraction)])
    _assert_refused(tmp_path, cut, None, str(cut), "truncated or corrupt")
    _assert_refused(tmp_path, cut, files.mapping_file, str(cut))


def test_graph_cut_at_a_field_boundary_is_refused(exports: Exports, tmp_path: Path) -> None:
    files = exports.get(CASES_BY_NAME["cfg_simple_default"], "dynamo")
    proto = onnx.load(str(files.onnx_file), load_external_data=False)
    del proto.graph.node[len(proto.graph.node) // 2 :]  # still parses, but outputs are no longer produced
    cut = tmp_path / "half.onnx"
    cut.write_bytes(proto.SerializeToString())
    _assert_refused(tmp_path, cut, None, "not a complete ONNX model")


def test_unreadable_files_are_input_errors(exports: Exports, tmp_path: Path) -> None:
    files = exports.get(CASES_BY_NAME["cin3_conv"], "dynamo")
    _assert_refused(tmp_path, tmp_path / "missing.onnx", None, "cannot read the ONNX file")
    _assert_refused(tmp_path, files.onnx_file, tmp_path / "missing.json", "cannot read the mapping file")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    _assert_refused(tmp_path, files.onnx_file, garbage, "not valid JSON")


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d.update(extra=1), "does not satisfy its schema"),
        (lambda d: d.update(version=4), "version 4"),
        (lambda d: d.update(format="other"), "not a QuantScope mapping file"),
        (lambda d: d["modules"][1].pop("torch_class"), "'torch_class' is a required property"),
        (lambda d: d["nodes"]["/conv/Conv"].update(module="ghost"), "does not list: '/conv/Conv'"),
    ],
    ids=["unknown-key", "newer-version", "other-format", "missing-field", "unknown-module"],
)
def test_mapping_file_is_strict(
    edit: Callable[[dict[str, Any]], Any], needle: str, exports: Exports, tmp_path: Path
) -> None:
    files = exports.get(CASES_BY_NAME["cin3_conv"], "torchscript")
    _assert_refused(tmp_path, files.onnx_file, _edited_mapping(files, tmp_path, edit), needle)


def _first(data: dict[str, Any], key: str) -> Any:
    return next(iter(data[key].values()))


SCHEMA_EDITS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "unchanged": lambda d: None,
    "extra-key": lambda d: d.update(extra=1),
    "missing-key": lambda d: d.pop("tied_parameters"),
    "version-float": lambda d: d.update(version=1.0),
    "version-bool": lambda d: d.update(version=True),
    "format-wrong": lambda d: d.update(format="quantscope"),
    "onnx-file-null": lambda d: d.update(onnx_file=None),
    "exporter-unknown": lambda d: d["producer"].update(exporter="jit"),
    "opset-zero": lambda d: d["producer"].update(opset=0),
    "opset-null": lambda d: d["producer"].update(opset=None),
    "opset-string": lambda d: d["producer"].update(opset="18"),
    "torch-version-int": lambda d: d["producer"].update(torch_version=2),
    "producer-extra": lambda d: d["producer"].update(more="x"),
    "input-shape-negative": lambda d: d["producer"].update(input_shapes=[[1, -1]]),
    "input-shape-null-dim": lambda d: d["producer"].update(input_shapes=[[None, 3]]),
    "input-shape-not-list": lambda d: d["producer"].update(input_shapes=[7]),
    "digest-upper": lambda d: d["graph"].update(digest=d["graph"]["digest"].upper()),
    "digest-newline": lambda d: d["graph"].update(digest=d["graph"]["digest"] + "\n"),
    "graph-nodes-negative": lambda d: d["graph"].update(nodes=-1),
    "module-missing-field": lambda d: d["modules"][0].pop("class_path"),
    "module-empty-class": lambda d: d["modules"][0].update(class_name=""),
    "module-empty-torch-class": lambda d: d["modules"][0].update(torch_class=""),
    "module-parameter-int": lambda d: d["modules"][0].update(parameters=[1]),
    "module-aliases-int": lambda d: d["modules"][0].update(aliases=[1]),
    "module-aliases-repeated": lambda d: d["modules"][0].update(aliases=["a", "a"]),
    "module-aliases-missing": lambda d: d["modules"][0].pop("aliases"),
    "version-1-with-aliases": lambda d: d.update(version=1),
    "version-1": lambda d: [
        d.update(version=1),
        *((m.pop("aliases"), m.pop("config")) for m in d["modules"]),
    ],
    "module-config-list": lambda d: d["modules"][0].update(config=[]),
    "module-config-nested": lambda d: d["modules"][0].update(config={"a": [1]}),
    "modules-object": lambda d: d.update(modules={}),
    "node-empty-op": lambda d: _first(d, "nodes").update(op_type=""),
    "node-module-int": lambda d: _first(d, "nodes").update(module=3),
    "node-extra": lambda d: _first(d, "nodes").update(extra=None),
    "nodes-list": lambda d: d.update(nodes=[]),
    "dims-float": lambda d: _first(d, "initializers").update(dims=[2.0]),
    "dims-bool": lambda d: _first(d, "initializers").update(dims=[True]),
    "params-repeated": lambda d: _first(d, "initializers").update(params=["a", "a"]),
    "computed-from": lambda d: _first(d, "initializers").update(computed_from=["a.weight_g", "a.weight_v"]),
    "computed-from-repeated": lambda d: _first(d, "initializers").update(computed_from=["a", "a"]),
    "computed-from-int": lambda d: _first(d, "initializers").update(computed_from=[1]),
    "computed-from-version-2": lambda d: [
        d.update(version=2),
        _first(d, "initializers").update(computed_from=["a"]),
    ],
    "version-2": lambda d: d.update(version=2),
    "tied-single": lambda d: d.update(tied_parameters=[["a"]]),
    "tied-repeated": lambda d: d.update(tied_parameters=[["a", "a"]]),
    "tied-pair": lambda d: d.update(tied_parameters=[["a", "b"]]),
}


@pytest.mark.parametrize("edit", list(SCHEMA_EDITS.values()), ids=list(SCHEMA_EDITS))
def test_quick_schema_check_never_passes_what_the_validator_refuses(
    edit: Callable[[dict[str, Any]], Any], exports: Exports
) -> None:
    """The plain-Python check in front of the validator: when it passes a mapping, the validator does too,
    and a valid mapping passes it (else the validator would run on every read)."""
    files = exports.get(CASES_BY_NAME["shared_weight_linear"], "torchscript")
    data = json.loads(files.mapping_file.read_text())
    edit(data)
    valid = not list(schemas.validator(MAPPING_SCHEMA).iter_errors(data))
    quick = graph.mapping._fits_schema(data)
    assert quick == valid or (valid and not quick and edit is not SCHEMA_EDITS["unchanged"])
    if edit in (
        SCHEMA_EDITS["unchanged"],
        SCHEMA_EDITS["tied-pair"],
        SCHEMA_EDITS["version-1"],
        SCHEMA_EDITS["version-2"],
        SCHEMA_EDITS["computed-from"],
    ):
        assert quick
    assert graph.mapping.schema_errors(data) == sorted(
        f"{e.json_path}: {e.message}" for e in schemas.validator(MAPPING_SCHEMA).iter_errors(data)
    )


def test_duplicate_keys_in_the_mapping_are_refused(exports: Exports, tmp_path: Path) -> None:
    files = exports.get(CASES_BY_NAME["cin3_conv"], "torchscript")
    text = files.mapping_file.read_text().replace(
        '"nodes": {', '"nodes": {"/conv/Conv": {"op_type": "Conv", "module": null},', 1
    )
    doubled = tmp_path / "doubled.json"
    doubled.write_text(text)
    _assert_refused(tmp_path, files.onnx_file, doubled, "duplicate key '/conv/Conv'")


# --- what export_onnx writes ------------------------------------------------------------------------------


def test_mapping_records_modules_nodes_parameters_ties_and_producer(exports: Exports) -> None:
    files = exports.get(CASES_BY_NAME["shared_weight_linear"], "torchscript")
    data = json.loads(files.mapping_file.read_text())
    assert list(schemas.validator(MAPPING_SCHEMA).iter_errors(data)) == []
    assert [m["name"] for m in data["modules"]] == ["", "fc_a", "fc_b", "head"]
    assert data["modules"][1] == {
        "name": "fc_a",
        "class_name": "Linear",
        "class_path": "torch.nn.modules.linear.Linear",
        "torch_class": "Linear",
        "parameters": ["fc_a.weight", "fc_a.bias"],
        "aliases": [],
        "config": {},
    }
    assert data["nodes"]["/fc_b/Gemm"] == {"op_type": "Gemm", "module": "fc_b"}
    assert data["initializers"]["fc_a.weight"] == {"dims": [16, 16], "params": ["fc_a.weight", "fc_b.weight"]}
    assert data["tied_parameters"] == [["fc_a.weight", "fc_b.weight"]]
    producer = data["producer"]
    assert producer["exporter"] == "torchscript" and producer["opset"] == 17
    assert (
        producer["torch_version"] == str(torch.__version__) and producer["onnx_version"] == onnx.__version__
    )
    assert producer["input_shapes"] == [[2, 16]]
    proto = onnx.load(str(files.onnx_file), load_external_data=False)
    assert data["graph"]["nodes"] == len(proto.graph.node) == len(data["nodes"])


def test_export_onnx_paths_and_overwrite(tmp_path: Path) -> None:
    case = CASES_BY_NAME["cin3_conv"]
    target = tmp_path / "deep" / "net.onnx"
    first = export_onnx(case.model(), case.inputs(), target, exporter="torchscript")
    assert first.mapping_file == tmp_path / "deep" / "net.mapping.json" == default_mapping_path(target)
    assert first.data_file == tmp_path / "deep" / "net.onnx.data"
    size = first.data_file.stat().st_size
    again = export_onnx(
        case.model(), case.inputs(), str(target), str(tmp_path / "m.json"), exporter="torchscript"
    )
    assert (
        again.mapping_file == tmp_path / "m.json" and again.data_file.stat().st_size == size
    )  # replaced, not appended
    assert default_mapping_path("model.bin") == Path("model.bin.mapping.json")
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == [
        "net.mapping.json",
        "net.onnx",
        "net.onnx.data",
    ]


def test_export_onnx_checks_its_arguments(tmp_path: Path) -> None:
    case = CASES_BY_NAME["cin3_conv"]
    with pytest.raises(TypeError, match=r"model must be torch\.nn\.Module"):
        export_onnx("model", case.inputs(), tmp_path / "a.onnx")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="input_data"):
        export_onnx(case.model(), [1, 2], tmp_path / "a.onnx")
    with pytest.raises(TypeError, match="onnx_file"):
        export_onnx(case.model(), case.inputs(), 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exporter must be one of"):
        export_onnx(case.model(), case.inputs(), tmp_path / "a.onnx", exporter="tflite")
    assert list(tmp_path.iterdir()) == []


def test_graph_package_offers_the_offline_entry_points() -> None:
    import graph.export
    import graph.load

    assert graph.export_onnx is graph.export.export_onnx
    assert graph.load_graph is graph.load.load_graph


def test_weights_above_2gb_are_never_read(tmp_path: Path) -> None:
    """A graph whose weights (declared as external data, 4.3 GB, in a file that does not exist) exceed
    protobuf's 2 GB limit: only names and dims are read, so it analyses like any other."""
    from onnx import TensorProto, helper

    weight = TensorProto(name="fc.weight", data_type=TensorProto.FLOAT, dims=[65536, 16384])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "missing.bin"), ("offset", "0"), ("length", str(65536 * 16384 * 4))):
        weight.external_data.add(key=key, value=value)
    gemm = helper.make_node("Gemm", ["x", "fc.weight"], ["y"], name="node_linear", transB=1)
    for key, value in (
        ("pkg.torch.onnx.name_scopes", "['', 'fc', 'linear']"),
        (
            "pkg.torch.onnx.class_hierarchy",
            "['m.Net', 'torch.nn.modules.linear.Linear', 'aten.linear.default']",
        ),
    ):
        gemm.metadata_props.add(key=key, value=value)
    graph_ = helper.make_graph(
        [gemm],
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16384])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 65536])],
        initializer=[weight],
    )
    path = tmp_path / "huge.onnx"
    path.write_bytes(
        helper.make_model(graph_, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()
    )
    out = tmp_path / "config.json"
    create_quant_retrain_config_from_onnx(out, path)
    assert list(json.loads(out.read_text())) == ["version", "batch_num", "fc"]


class ConvBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


@pytest.mark.needs_dynamo
def test_optimized_dynamo_file_is_read_with_the_fused_conv_inferred(tmp_path: Path) -> None:
    """torch.onnx.export's default optimizer fuses BatchNorm into the Conv, whose node then carries the
    BatchNorm's scope: the conv's owner comes from its weight's parameter name, its class from the op, and
    both are marked as inferred."""
    path = tmp_path / "optimized.onnx"
    torch.onnx.export(ConvBN().eval(), (torch.randn(1, 3, 8, 8),), str(path), dynamo=True, verbose=False)
    proto = onnx.load(str(path), load_external_data=False)
    assert not [node for node in proto.graph.node if node.op_type == "BatchNormalization"]  # fused
    out = tmp_path / "optimized.json"
    report = create_quant_retrain_config_from_onnx(out, path)
    files = export_onnx(ConvBN(), (torch.randn(1, 3, 8, 8),), tmp_path / "plain.onnx")
    plain = tmp_path / "plain.json"
    plain_report = create_quant_retrain_config_from_onnx(plain, files.onnx_file)
    assert out.read_bytes() == plain.read_bytes()
    assert list(json.loads(out.read_text())) == ["version", "batch_num", "conv", "fc"]
    facts = report.record("conv").inferred
    assert [(i.fact, i.value) for i in facts] == [("owner", "conv"), ("class", "Conv2d")]
    assert "FuseBatchNormIntoConv" in facts[0].basis and "'conv.weight'" in facts[0].basis
    assert report.record("fc").inferred == ()
    assert plain_report.inferred_layers == 0 and report.inferred_layers == 1


@pytest.mark.needs_dynamo
def test_fused_conv_without_a_parameter_name_is_reported_not_guessed(tmp_path: Path) -> None:
    skip_before_torch(
        "2.9", "from torch 2.7's optimized file the renamed fused Conv is left out without a note"
    )
    path = tmp_path / "optimized.onnx"
    torch.onnx.export(ConvBN().eval(), (torch.randn(1, 3, 8, 8),), str(path), dynamo=True, verbose=False)
    proto = onnx.load(str(path), load_external_data=False)
    (conv,) = [node for node in proto.graph.node if node.op_type == "Conv"]
    (weight,) = [t for t in proto.graph.initializer if t.name == conv.input[1]]
    weight.name = conv.input[1] = "val_folded"
    renamed = tmp_path / "renamed.onnx"
    renamed.write_bytes(proto.SerializeToString())
    out = tmp_path / "c.json"
    report = create_quant_retrain_config_from_onnx(out, renamed)
    assert list(json.loads(out.read_text())) == ["version", "batch_num", "fc"]
    (note,) = [n for n in report.notes if n.nodes == (conv.name,)]
    assert "cannot be established" in note.reason and "'val_folded' is no parameter name" in note.reason
    assert "'bn'" in note.reason
