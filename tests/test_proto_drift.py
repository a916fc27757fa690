"""Every `schemas/*.proto` has its committed descriptor, which matches a fresh run of the pinned protoc; the
messages are built from it on every protobuf of the declared range; and the retrain proto keeps the
AMCT-compatible messages, fields and numbers of SPEC section 4."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor, descriptor_pb2

from schemas.messages import DESCRIPTOR_SUFFIX, proto_module, proto_names
from schemas.protoc import protoc_command

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
PINNED_TOOLS = "grpcio-tools==1.85.1"
retrain_config_pb2 = proto_module("retrain_config")


def test_every_proto_has_its_descriptor_and_no_descriptor_is_orphaned() -> None:
    protos = {p.stem for p in SCHEMAS.glob("*.proto")}
    descriptors = {p.name[: -len(DESCRIPTOR_SUFFIX)] for p in SCHEMAS.glob("*" + DESCRIPTOR_SUFFIX)}
    assert "retrain_config" in protos
    assert set(proto_names()) == protos
    assert descriptors == protos, "run `tox -e proto` and commit schemas/*.binpb"


@pytest.mark.skipif(
    importlib.util.find_spec("grpc_tools") is None,
    reason=f"grpc_tools is not importable: install {PINNED_TOOLS} (constraints/test.txt) to regenerate the descriptors",
)
@pytest.mark.parametrize("name", sorted(p.stem for p in SCHEMAS.glob("*.proto")))
def test_committed_descriptor_matches_a_fresh_protoc_run(name: str, tmp_path: Path) -> None:
    # the same command as `tox -e proto`, writing into a temporary folder
    run = subprocess.run(
        protoc_command(name, tmp_path), cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    committed = SCHEMAS / (name + DESCRIPTOR_SUFFIX)
    if (tmp_path / committed.name).read_bytes() != committed.read_bytes():
        pytest.fail(
            f"schemas/{committed.name} does not match schemas/{name}.proto: "
            f"run `tox -e proto` (protoc from {PINNED_TOOLS}) and commit the result"
        )


def test_unknown_proto_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"no schemas/retrain\.proto; the protos are: .*retrain_config"):
        proto_module("retrain")


@pytest.mark.parametrize("name", sorted(p.stem for p in SCHEMAS.glob("*.proto")))
def test_messages_build_without_a_warning_in_a_fresh_interpreter(name: str) -> None:
    # generated code warns (or refuses) when its protoc and the runtime differ; the descriptor must not
    code = (
        "from schemas.messages import proto_module\n"
        f"m = proto_module({name!r})\n"
        "for t in m.DESCRIPTOR.message_types_by_name: getattr(m, t)().SerializePartialToString()\n"
    )
    run = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr


def _lower_bound(requirement: str, text: str) -> str:
    found = re.search(rf'"{requirement}>=([\d.]+)', text)
    assert found is not None, f"pyproject.toml declares no lower bound for {requirement}"
    return found.group(1)


def test_declared_lower_bounds_are_the_tested_oldest_set() -> None:
    # pyproject.toml declares exactly what is tested: each floor is the version tox -e oldest pins
    declared = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    pins = dict(
        line.split("==")
        for line in (ROOT / "constraints" / "oldest.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    )
    for requirement in ("protobuf", "onnx", "torch"):
        lower = _lower_bound(requirement, declared)
        assert tuple(int(p) for p in lower.split(".")) <= tuple(int(p) for p in pins[requirement].split("."))
        assert pins[requirement].startswith(lower), (
            f"{requirement}: declared >={lower}, oldest set tests {pins[requirement]}"
        )


# (message, field, number, label, type name or scalar type) as fixed by SPEC section 4
LABEL = {
    "optional": descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    "required": descriptor_pb2.FieldDescriptorProto.LABEL_REQUIRED,
    "repeated": descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
}
FIELDS = [
    ("AMCTRetrainConfig", "batch_num", 1, "optional", "uint32"),
    ("AMCTRetrainConfig", "retrain_data_quant_config", 2, "optional", "RetrainDataQuantConfig"),
    ("AMCTRetrainConfig", "retrain_weight_quant_config", 3, "optional", "RetrainWeightQuantConfig"),
    ("AMCTRetrainConfig", "skip_layers", 4, "repeated", "string"),
    ("AMCTRetrainConfig", "override_layer_configs", 5, "repeated", "RetrainOverrideLayer"),
    ("AMCTRetrainConfig", "skip_layer_types", 6, "repeated", "string"),
    ("AMCTRetrainConfig", "override_layer_types", 7, "repeated", "RetrainOverrideLayerType"),
    ("AMCTRetrainConfig", "prune_config", 8, "optional", "PruneConfig"),
    ("AMCTRetrainConfig", "regular_prune_skip_layers", 9, "repeated", "string"),
    ("AMCTRetrainConfig", "regular_prune_skip_types", 10, "repeated", "string"),
    ("AMCTRetrainConfig", "quant_skip_layers", 11, "repeated", "string"),
    ("AMCTRetrainConfig", "quant_skip_types", 12, "repeated", "string"),
    ("AMCTRetrainConfig", "fakequant_precision_mode", 21, "optional", "FakequantPrecisionMode"),
    ("RetrainDataQuantConfig", "ulq_quantize", 13, "optional", "ActULQquantize"),
    ("ActULQquantize", "clip_max_min", 1, "optional", "ClipMaxMin"),
    ("ActULQquantize", "fixed_min", 2, "optional", "bool"),
    ("ActULQquantize", "dst_type", 3, "optional", "DataType"),
    ("ClipMaxMin", "clip_max", 3, "required", "float"),
    ("ClipMaxMin", "clip_min", 5, "required", "float"),
    ("RetrainWeightQuantConfig", "arq_retrain", 1, "optional", "ARQRetrain"),
    ("RetrainWeightQuantConfig", "ulq_retrain", 2, "optional", "WtsULQRetrain"),
    ("ARQRetrain", "dst_type", 1, "optional", "DataType"),
    ("ARQRetrain", "channel_wise", 2, "optional", "bool"),
    ("WtsULQRetrain", "dst_type", 1, "optional", "DataType"),
    ("WtsULQRetrain", "channel_wise", 2, "optional", "bool"),
    ("RetrainOverrideLayer", "layer_name", 1, "required", "string"),
    ("RetrainOverrideLayer", "retrain_data_quant_config", 2, "optional", "RetrainDataQuantConfig"),
    ("RetrainOverrideLayer", "retrain_weight_quant_config", 3, "optional", "RetrainWeightQuantConfig"),
    ("RetrainOverrideLayer", "prune_config", 4, "optional", "PruneConfig"),
    ("RetrainOverrideLayerType", "layer_type", 1, "required", "string"),
    ("RetrainOverrideLayerType", "retrain_data_quant_config", 2, "optional", "RetrainDataQuantConfig"),
    ("RetrainOverrideLayerType", "retrain_weight_quant_config", 3, "optional", "RetrainWeightQuantConfig"),
    ("RetrainOverrideLayerType", "prune_config", 4, "optional", "PruneConfig"),
    ("PruneConfig", "filter_pruner", 1, "optional", "FilterPruner"),
    ("PruneConfig", "n_out_of_m_pruner", 2, "optional", "NOutOfMPruner"),
    ("FilterPruner", "balanced_l2_norm_filter_prune", 1, "optional", "BalancedL2NormFilterPruner"),
    ("BalancedL2NormFilterPruner", "prune_ratio", 1, "required", "float"),
    ("BalancedL2NormFilterPruner", "ascend_optimized", 2, "optional", "bool"),
    ("NOutOfMPruner", "l1_selective_prune", 1, "optional", "L1SelectivePruner"),
    ("L1SelectivePruner", "n_out_of_m_type", 1, "optional", "NOutOfMType"),
    ("L1SelectivePruner", "update_freq", 2, "optional", "uint32"),
]
SCALARS = {
    descriptor.FieldDescriptor.TYPE_UINT32: "uint32",
    descriptor.FieldDescriptor.TYPE_STRING: "string",
    descriptor.FieldDescriptor.TYPE_BOOL: "bool",
    descriptor.FieldDescriptor.TYPE_FLOAT: "float",
}
ONEOFS = {
    "RetrainDataQuantConfig": {"ulq_quantize"},
    "RetrainWeightQuantConfig": {"arq_retrain", "ulq_retrain"},
    "PruneConfig": {"filter_pruner", "n_out_of_m_pruner"},
    "FilterPruner": {"balanced_l2_norm_filter_prune"},
    "NOutOfMPruner": {"l1_selective_prune"},
}
DEFAULTS = [
    ("AMCTRetrainConfig", "batch_num", 1),
    ("ActULQquantize", "dst_type", 1),  # INT8
    ("ARQRetrain", "dst_type", 1),
    ("WtsULQRetrain", "dst_type", 1),
    ("BalancedL2NormFilterPruner", "ascend_optimized", True),
    ("L1SelectivePruner", "n_out_of_m_type", 0),  # M4N2
    ("L1SelectivePruner", "update_freq", 0),
]


def _message(name: str) -> descriptor.Descriptor:
    found: descriptor.Descriptor = retrain_config_pb2.DESCRIPTOR.message_types_by_name[name]
    return found


def _file_proto() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    retrain_config_pb2.DESCRIPTOR.CopyToProto(proto)
    return proto


def test_proto_is_proto2() -> None:
    proto = _file_proto()
    assert proto.syntax in ("", "proto2")  # protoc leaves `syntax` empty for proto2
    assert not proto.HasField("edition")


def test_messages_and_fields_are_exactly_those_of_the_format() -> None:
    labels = {(m.name, f.name): f.label for m in _file_proto().message_type for f in m.field}
    expected: dict[str, set[str]] = {}
    for message, field, number, label, type_name in FIELDS:
        expected.setdefault(message, set()).add(field)
        desc = _message(message).fields_by_name[field]
        assert desc.number == number, f"{message}.{field}"
        assert labels[(message, field)] == LABEL[label], f"{message}.{field}"
        actual = SCALARS.get(desc.type) or (desc.message_type or desc.enum_type).name
        assert actual == type_name, f"{message}.{field}"
    assert set(retrain_config_pb2.DESCRIPTOR.message_types_by_name) == set(expected)
    for message, fields in expected.items():
        assert set(_message(message).fields_by_name) == fields, message


def test_oneofs_defaults_and_enums() -> None:
    for message, members in ONEOFS.items():
        (oneof,) = _message(message).oneofs
        assert {f.name for f in oneof.fields} == members
    for message, field, default in DEFAULTS:
        desc = _message(message).fields_by_name[field]
        assert desc.has_default_value and desc.default_value == default, f"{message}.{field}"
    enums = {
        name: {v.name: v.number for v in enum.values}
        for name, enum in retrain_config_pb2.DESCRIPTOR.enum_types_by_name.items()
    }
    assert enums == {
        "DataType": {"INT4": 0, "INT8": 1, "INT16": 2},
        "FakequantPrecisionMode": {"FORCE_FP16_QUANT": 1},
        "NOutOfMType": {"M4N2": 0},
    }
