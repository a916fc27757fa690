"""Fidelity on the ONNX files users already have: every test model exported the plain ways and analysed
with no mapping file, compared byte for byte with the library call on the model.

File kinds:
- `dynamo-default`: `torch.onnx.export(model, args, path, dynamo=True)`, torch's default from 2.9 on, with the
  other defaults (optimize=True: BatchNorm fused into Conv, zero biases dropped, equal small initializers merged);
- `torchscript-default`: `torch.onnx.export(model, args, path, dynamo=False)` (constant folding: BatchNorm folded,
  weights renamed `onnx::Conv_N`, equal initializers merged; no metadata);
- `quantscope`: `graph.export_onnx(model, args, path)` analysed without its mapping (dynamo metadata).

Models are exported in eval mode, as a model is before deployment. The expected output is the library call's
bytes; the pairs where the file cannot say what the analysis needs are listed in `KNOWN_DIFFERENCES` with the
reason, and for those the test asserts that the result differs and that every layer it writes is flagged as
resting on inference (so a list entry that stops being true fails, as does an unflagged guess).
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analyzer import Report, create_quant_retrain_config, create_quant_retrain_config_from_onnx
from graph.capabilities import torch_exporters
from graph.export import export_onnx
from tests import architectures as arch
from tests.cases import CASES, Case
from tests.test_exporters import Collisions
from tests.test_offline import DeepCopies
from tests.torch_support import TORCHSCRIPT, skip_before_torch, skip_without_dynamo

try:
    import analyzer.simple_config  # noqa: F401

    HAS_SIMPLE_CONFIG = True
except ImportError:  # the simple config not there yet: cases with a cfg are skipped
    HAS_SIMPLE_CONFIG = False


class Conv2dSame(nn.Conv2d):
    """A Conv2d subclass with another name (timm's): not a candidate, as AMCT decides by class name."""


class RenamedSubclass(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = Conv2dSame(3, 8, 3, padding=1)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(self.stem(x)))


class FunctionalConv(nn.Module):
    """A module with its own weight that calls `F.conv2d` in its forward: no Conv2d module at all."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 8, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, padding=1)


class WithFunctionalConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = FunctionalConv()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(F.relu(self.stem(x)))


class RegisteredBackwards(nn.Module):
    """Registration order (named_modules, the config's order) differs from call order."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 4)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.stem = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x)).mean((2, 3)))


def sequential_root() -> nn.Module:
    """A root `nn.Sequential`: numeric module names (`0`, `3.2.0`) in the scopes, BatchNorm after each conv."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.Sequential(nn.Conv2d(8, 8, 1))),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def _tokens() -> tuple[torch.Tensor, ...]:
    return (torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(0)),)


def _images(*shapes: tuple[int, ...]) -> Callable[[], tuple[torch.Tensor, ...]]:
    def make() -> tuple[torch.Tensor, ...]:
        gen = torch.Generator().manual_seed(0)
        return tuple(torch.randn(*shape, generator=gen) for shape in shapes)

    return make


# name -> (model factory, inputs factory, simple config or None, golden file name or None, expected error)
Model = tuple[Callable[[], nn.Module], Callable[[], tuple[torch.Tensor, ...]], Path | None, str | None]


def _case_entry(case: Case) -> Model:
    return (case.factory, case.inputs, case.cfg_path(), case.error)


MODELS: dict[str, Model] = {case.name: _case_entry(case) for case in CASES}
# the layer-type mode each model is analysed in (SPEC section 9), by the library call and offline alike
MODES: dict[str, str] = {case.name: case.layer_types for case in CASES}
# cases that share a model and inputs share its files (cfg_resnet18 is resnet18_hand with a simple config)
SAME_FILES: dict[str, str] = {}
for _case in CASES:
    SAME_FILES.setdefault(
        _case.name,
        next(c.name for c in CASES if (c.factory, c.shapes) == (_case.factory, _case.shapes)),
    )
MODELS.update(
    {
        "arch_mobilenet_v2": (arch.MobileNetV2Tiny, _images((1, 3, 32, 32)), None, None),
        "arch_efficientnet": (arch.EfficientNetTiny, _images((1, 3, 32, 32)), None, None),
        "arch_densenet": (arch.DenseNetTiny, _images((1, 3, 32, 32)), None, None),
        "arch_vit": (arch.ViTTiny, _images((1, 3, 32, 32)), None, None),
        "arch_swin": (arch.SwinTiny, _images((1, 3, 36, 36)), None, None),
        "arch_bert": (arch.BertTiny, _tokens, None, None),
        "arch_gpt2": (arch.GPT2Tiny, _tokens, None, None),
        "arch_llama": (arch.LlamaTiny, _tokens, None, None),
        "renamed_subclass": (RenamedSubclass, _images((1, 3, 8, 8)), None, None),
        "functional_conv": (WithFunctionalConv, _images((1, 3, 8, 8)), None, None),
        "deep_copies": (DeepCopies, _images((2, 16), (1, 3, 12, 12)), None, None),
        "registered_backwards": (RegisteredBackwards, _images((1, 3, 8, 8)), None, None),
        # equally named children under never-called ModuleDicts, a second call colliding with a real `conv_1`
        "collisions": (Collisions, _images((1, 3, 8, 8)), None, None),
        "sequential_root": (sequential_root, _images((1, 3, 16, 16)), None, None),
    }
)
KINDS = ("dynamo-default", "torchscript-default", "quantscope")

# (model, file kind) -> why the file cannot give the library call's bytes
_ORDER = (
    "BatchNorm folding renamed the conv weights (onnx::Conv_N), so the file keeps no trace of the registration "
    "order; the node order is the call order, and this forward calls {} before {}"
)
_RNN_ORDER = (
    "the LSTM/GRU gate weights are re-sliced into new tensors (onnx::LSTM_N), so the file keeps no trace of the "
    "registration order; the node order is the call order, and this forward calls conv1d first and fc last"
)
_DROPOUT = (
    "an LSTM's dropout is not in the graph: without the mapping file the single-layer LSTM with dropout 0.25 "
    "is kept (the QS204 advisory says the fact could not be established), where AMCT leaves it out"
)
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    ("resnet18_hand", "torchscript-default"): _ORDER.format("downsample", "conv1/conv2 of the first block"),
    ("cfg_resnet18", "torchscript-default"): _ORDER.format("downsample", "conv1/conv2 of the first block"),
    ("registered_backwards", "torchscript-default"): _ORDER.format("stem", "head and body"),
    ("arch_llama", "torchscript-default"): (
        "the ModuleDict parents (self_attn, mlp) are never called, so node names lose them, and the bias-free "
        "Linear weights are renamed (onnx::MatMul_N): layers.0.q_proj instead of layers.0.self_attn.q_proj"
    ),
    ("renamed_subclass", "torchscript-default"): (
        "a Conv2d subclass named Conv2dSame is not a candidate, but the file has no class names: its Conv with a "
        "4-D weight reads as a Conv2d"
    ),
    ("functional_conv", "torchscript-default"): (
        "F.conv2d in a leaf module's forward makes the same Conv node, in the same scope, as a Conv2d would"
    ),
    ("a_mix_all", "torchscript-default"): _RNN_ORDER,
    ("d_new_types_overrides", "torchscript-default"): _RNN_ORDER,
    ("aliased_conv", "torchscript-default"): (
        "the module registered as conv1 ran as net.conv1 (its other name, inside nn.Sequential); the file names "
        "only the scope the call went through"
    ),
    ("a_wn_mix_all", "torchscript-default"): _RNN_ORDER,
    ("wn_shared_source", "torchscript-default"): (
        "constant folding computed each weight-norm weight into its own constant (onnx::Gemm_N): the file keeps no "
        "trace of the weight_v Parameter the two layers' weights are computed from, so they are not seen sharing"
    ),
    ("a_wn_tcn_block", "torchscript-default"): (
        "the weight-norm convs registered as conv1/conv2 ran as net.conv1/net.conv2 (their other names, inside "
        "nn.Sequential); the file names only the scope the call went through"
    ),
    ("a_lstm_dropout_1layer", "torchscript-default"): _DROPOUT,
    ("a_lstm_dropout_1layer", "dynamo-default"): _DROPOUT,
    ("deep_copies", "dynamo-default"): (
        "the optimizer merged the equal-valued weights of the deep-copied layers into one initializer, which "
        "reads exactly like a tied parameter: the layers are excluded as sharing a weight"
    ),
}
# differences that no fact of the file can flag: what the file says is itself other than the model
UNFLAGGED: dict[tuple[str, str], str] = {
    ("a_wn_tcn_block", "dynamo-default"): (
        "the weight-norm convs registered as conv1/conv2 ran as net.0/net.4 (their other names): the metadata "
        "names those scopes, as for aliased_conv"
    ),
    ("aliased_conv", "dynamo-default"): (
        "the module registered as conv1 ran as net.0 (its other name): the metadata names net.0 as the op's "
        "module and the Conv reads net.0.weight, the graph signature listing the parameters under both names; "
        "a net.0 whose weights are tied to a conv1 that never ran looks the same, so the alias cannot be told"
    ),
}
# files of torch's own dynamo export (optimizer on) that torch 2.7.1 writes differently, with what the offline
# call on them gives instead of the library call's bytes (seen on 2.7.1; the cause is not established yet)
_OTHER_ORDER = "the layers in another order"
DIFFERENT_BEFORE_TORCH_2_9: dict[tuple[str, str], str] = {
    **{
        (name, "dynamo-default"): _OTHER_ORDER
        for name in ("linear_variants", "a_lstm", "a_mix_all", "d_new_types_overrides", "a_wn_mix_all")
    },
    ("wn_shared_source", "dynamo-default"): (
        "fc_a and fc_b kept: the file does not show the weight_v their weight-norm weights share"
    ),
}
# files of the TorchScript exporter that older torch writes with less in them: (torch that writes more, why)
KNOWN_BEFORE_TORCH: dict[tuple[str, str], tuple[str, str]] = {
    ("parametrized_cfg_simple", "torchscript-default"): (
        "2.9",
        "constant folding computed each parametrized weight into a constant (onnx::Conv_N; seen on torch 2.1.0 "
        "and 2.7.1, where torch 2.13 keeps the parametrization's ops and parameters): the file keeps no trace of "
        "the renamed ParametrizedConv2d class, so its Conv reads as a Conv2d's",
    ),
}
# QuantScope's own exports of the reference cases are compared with the golden files in tests/test_offline.py
CASE_NAMES = frozenset(case.name for case in CASES)


def _mode(name: str) -> str:
    return MODES.get(name, "documented")


class Files:
    """Each (model, file kind) exported once for the whole module, and the library call's bytes per model."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[tuple[str, str], Path] = {}
        self._library: dict[str, str | None] = {}

    def model(self, name: str) -> nn.Module:
        torch.manual_seed(0)
        return MODELS[name][0]()

    def library(self, name: str) -> str | None:
        """The library call's config text, or None when it raises (no layer to quantize)."""
        if name not in self._library:
            _, inputs, cfg, _ = MODELS[name]
            out = self.root / f"{name}-library.json"
            try:
                create_quant_retrain_config(
                    str(out), self.model(name), inputs(), str(cfg) if cfg else None, layer_types=_mode(name)
                )
            except ValueError:
                self._library[name] = None
            else:
                self._library[name] = out.read_text(encoding="utf-8")
        return self._library[name]

    def onnx(self, name: str, kind: str) -> Path:
        name = SAME_FILES.get(name, name)
        key = (name, kind)
        if kind in ("dynamo-default", "quantscope"):  # dynamo: torch's default from 2.9 on, export_onnx's
            skip_without_dynamo()
        if key not in self._files:
            folder = self.root / f"{name}-{kind}"
            folder.mkdir()
            path = folder / "model.onnx"
            model = self.model(name).eval()
            args = MODELS[name][1]()
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                # the exporters print progress and warn about the traced models' Python arithmetic
                warnings.simplefilter("ignore")
                if kind == "dynamo-default":
                    torch.onnx.export(model, args, str(path), verbose=False, dynamo=True)
                elif kind == "torchscript-default":
                    torch.onnx.export(model, args, str(path), **TORCHSCRIPT)
                elif kind == "torchscript-no-params":
                    torch.onnx.export(model, args, str(path), export_params=False, **TORCHSCRIPT)
                elif kind == "torchscript-no-folding":
                    torch.onnx.export(model, args, str(path), do_constant_folding=False, **TORCHSCRIPT)
                else:
                    written = export_onnx(model, args, path)
                    written.mapping_file.unlink()  # analysed from its metadata alone
            self._files[key] = path
        return self._files[key]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    return Files(tmp_path_factory.mktemp("default-exports"))


def _offline(files: Files, name: str, kind: str, out: Path) -> tuple[Report | None, str | None, str]:
    """The offline call on the file: (report, config text) or (None, None, error text)."""
    cfg = MODELS[name][2]
    try:
        report = create_quant_retrain_config_from_onnx(
            str(out), str(files.onnx(name, kind)), None, str(cfg) if cfg else None, layer_types=_mode(name)
        )
    except ValueError as err:
        assert not out.exists()
        return None, None, str(err)
    return report, out.read_text(encoding="utf-8"), ""


PAIRS = [
    pytest.param(name, kind, id=f"{name}-{kind}")
    for name in MODELS
    for kind in KINDS
    if not (kind == "quantscope" and name in CASE_NAMES)
]


@pytest.mark.parametrize(("name", "kind"), PAIRS)
def test_default_export_gives_the_library_bytes(name: str, kind: str, files: Files, tmp_path: Path) -> None:
    if MODELS[name][2] is not None and not HAS_SIMPLE_CONFIG:
        pytest.skip("analyzer.simple_config is not available yet")
    if (name, kind) in DIFFERENT_BEFORE_TORCH_2_9:
        skip_without_dynamo()
        skip_before_torch(
            "2.9",
            f"torch 2.7.1's optimized dynamo file of this model gives {DIFFERENT_BEFORE_TORCH_2_9[name, kind]}",
        )
    expected = files.library(name)
    report, text, error = _offline(files, name, kind, tmp_path / "config.json")
    if (name, kind) in UNFLAGGED:
        # the config names the layer by its other name, with the very settings the library call gives it
        assert text is not None and expected is not None and text != expected, error
        library, offline = json.loads(expected), json.loads(text)
        assert sorted(library.values(), key=json.dumps) == sorted(offline.values(), key=json.dumps)
        return
    why = KNOWN_DIFFERENCES.get((name, kind)) or _known_on_this_torch(name, kind)
    if why is None:
        assert text == expected, error or f"{name} from the {kind} file differs from the library call"
        if expected is None:
            wanted = MODELS[name][3]
            assert wanted is not None and wanted in error
        return
    # the file cannot say: the result differs, and every layer where it differs is flagged as inferred
    assert text != expected, f"{name}/{kind} is listed as differing ({why}) but gives the library bytes"
    assert report is not None and text is not None, error
    for layer in _differing(expected, text, report):
        record = report.record(layer)
        unknown = any(a.code == "QS204" for a in record.advisories)  # facts reported as not established
        assert record.inferred or unknown, f"{layer} differs from the library call and is not flagged"
    if report.inferred_layers:
        assert report.summary_line().endswith(f"; {report.inferred_layers} layers rest on inferred facts")


def _known_on_this_torch(name: str, kind: str) -> str | None:
    """The reason of a KNOWN_BEFORE_TORCH entry when the installed torch is older than the one it names."""
    entry = KNOWN_BEFORE_TORCH.get((name, kind))
    if entry is None:
        return None
    version, why = entry
    installed = tuple(int(part) for part in torch_exporters().torch_version.split(".")[:2])
    return why if installed < tuple(int(part) for part in version.split(".")) else None


def _differing(expected: str | None, text: str, report: Report) -> list[str]:
    """The layers the report knows whose config entry or position differs from the library call's."""
    library: dict[str, Any] = json.loads(expected) if expected else {}
    offline: dict[str, Any] = json.loads(text)
    names, wanted = list(offline)[2:], list(library)[2:]
    known = {record.name for record in report.layers}
    both = [layer for layer in wanted if layer in offline]
    order = [layer for layer in names if layer in library]
    found = [layer for layer in names if layer not in library]  # configured here, not by the library call
    found += [layer for layer in wanted if layer not in offline and layer in known]  # left out here
    found += [
        layer
        for position, layer in enumerate(order)
        if both[position] != layer or library[layer] != offline[layer]  # elsewhere, or other settings
    ]
    assert found, "the configs differ, so some layer must"
    return found


@pytest.mark.parametrize("name", ["resnet18_hand", "arch_mobilenet_v2", "arch_bert"])
def test_every_layer_of_a_torchscript_file_is_flagged(name: str, files: Files, tmp_path: Path) -> None:
    report, text, error = _offline(files, name, "torchscript-default", tmp_path / "c.json")
    assert report is not None and text is not None, error
    configured = list(json.loads(text))[2:]
    assert configured and all(
        {i.fact for i in report.record(n).inferred} >= {"class", "name"} for n in configured
    )
    data: dict[str, Any] = json.loads(report.to_json())
    assert data["summary"]["inferred_layers"] == report.inferred_layers >= len(configured)
    assert "inferred" in report.to_text().splitlines()[2]  # the table's header has the column


def test_files_that_say_everything_rest_on_no_inference(files: Files, tmp_path: Path) -> None:
    for kind in ("dynamo-default", "quantscope"):
        report, _, error = _offline(files, "arch_vit", kind, tmp_path / f"{kind}.json")
        assert report is not None, error
        assert report.inferred_layers == 0
        assert "inferred" not in report.to_text()


@pytest.mark.parametrize("kind", ["torchscript-no-params", "torchscript-no-folding"])
@pytest.mark.parametrize("name", ["linear_3d_input", "arch_bert", "arch_gpt2", "resnet18_hand"])
def test_torchscript_settings_other_than_the_defaults(
    name: str, kind: str, files: Files, tmp_path: Path
) -> None:
    """Weights as graph inputs (`export_params=False`, renamed ones too when constant folding runs), or
    nothing folded: the same bytes, except where the default file already cannot say the order (folded
    BatchNorm renames the weights whether they are exported or not)."""
    _, text, error = _offline(files, name, kind, tmp_path / "c.json")
    assert text is not None, error
    if name == "resnet18_hand" and kind == "torchscript-no-params":
        assert text != files.library(name)
        assert sorted(json.loads(text)) == sorted(json.loads(files.library(name) or "{}"))
        return
    assert text == files.library(name)
