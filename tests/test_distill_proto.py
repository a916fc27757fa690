"""schemas/distill_config.proto keeps AMCT's package, messages, fields and numbers (SPEC 11.5), so that a file
written for AMCT reads the same here (tests/test_proto_drift.py checks the committed module against it)."""

from __future__ import annotations

from google.protobuf import descriptor, descriptor_pb2

from schemas.messages import proto_module

distill_config = proto_module("distill_config")

# (message, field, number, label, type) as SPEC 11.5 fixes them
REQUIRED, OPTIONAL, REPEATED = "required", "optional", "repeated"
FIELDS = [
    ("AMCTDistillConfig", "batch_num", 1, OPTIONAL, "uint32"),
    ("AMCTDistillConfig", "group_size", 2, OPTIONAL, "uint32"),
    ("AMCTDistillConfig", "data_dump", 3, OPTIONAL, "bool"),
    ("AMCTDistillConfig", "distill_group", 10, REPEATED, "DistillGroup"),
    ("AMCTDistillConfig", "distill_data_quant_config", 11, OPTIONAL, "DistillDataQuantConfig"),
    ("AMCTDistillConfig", "distill_weight_quant_config", 12, OPTIONAL, "DistillWeightQuantConfig"),
    ("AMCTDistillConfig", "distill_override_layers", 110, REPEATED, "DistillOverrideLayer"),
    ("AMCTDistillConfig", "distill_override_layer_types", 111, REPEATED, "DistillOverrideLayerType"),
    ("AMCTDistillConfig", "quant_skip_layers", 120, REPEATED, "string"),
    ("AMCTDistillConfig", "quant_skip_layer_types", 121, REPEATED, "string"),
    ("DistillGroup", "start_layer_name", 1, REQUIRED, "string"),
    ("DistillGroup", "end_layer_name", 2, REQUIRED, "string"),
    ("DistillDataQuantConfig", "ulq_quantize", 1, OPTIONAL, "ActULQquantize"),
    ("DistillWeightQuantConfig", "arq_distill", 1, OPTIONAL, "ARQDistill"),
    ("DistillWeightQuantConfig", "ulq_distill", 2, OPTIONAL, "WtsULQDistill"),
    ("ActULQquantize", "clip_max_min", 1, OPTIONAL, "ClipMaxMin"),
    ("ActULQquantize", "fixed_min", 2, OPTIONAL, "bool"),
    ("ActULQquantize", "dst_type", 3, OPTIONAL, "DataType"),
    ("ClipMaxMin", "clip_max", 1, REQUIRED, "float"),
    ("ClipMaxMin", "clip_min", 2, REQUIRED, "float"),
    ("ARQDistill", "dst_type", 1, OPTIONAL, "DataType"),
    ("ARQDistill", "channel_wise", 2, OPTIONAL, "bool"),
    ("WtsULQDistill", "dst_type", 1, OPTIONAL, "DataType"),
    ("WtsULQDistill", "channel_wise", 2, OPTIONAL, "bool"),
    ("DistillOverrideLayer", "layer_name", 1, REQUIRED, "string"),
    ("DistillOverrideLayer", "distill_data_quant_config", 10, OPTIONAL, "DistillDataQuantConfig"),
    ("DistillOverrideLayer", "distill_weight_quant_config", 11, OPTIONAL, "DistillWeightQuantConfig"),
    ("DistillOverrideLayerType", "layer_type", 1, REQUIRED, "string"),
    ("DistillOverrideLayerType", "distill_data_quant_config", 10, OPTIONAL, "DistillDataQuantConfig"),
    ("DistillOverrideLayerType", "distill_weight_quant_config", 11, OPTIONAL, "DistillWeightQuantConfig"),
]
SCALARS = {
    descriptor.FieldDescriptor.TYPE_UINT32: "uint32",
    descriptor.FieldDescriptor.TYPE_STRING: "string",
    descriptor.FieldDescriptor.TYPE_BOOL: "bool",
    descriptor.FieldDescriptor.TYPE_FLOAT: "float",
}


def test_package_messages_fields_and_numbers() -> None:
    file = distill_config.DESCRIPTOR
    assert file.package == "AMCTPytorchDistillProto"
    found = []
    labels = {
        descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED: REPEATED,
        descriptor_pb2.FieldDescriptorProto.LABEL_REQUIRED: REQUIRED,
    }
    for name, message in file.message_types_by_name.items():
        written = descriptor_pb2.DescriptorProto()
        message.CopyToProto(written)  # the label as the .proto wrote it, on every protobuf of the range
        label_of = {field.name: labels.get(field.label, OPTIONAL) for field in written.field}
        for field in message.fields:
            kind = SCALARS.get(field.type) or (field.message_type or field.enum_type).name
            label = label_of[field.name]
            found.append((name, field.name, field.number, label, kind))
    assert sorted(found) == sorted(FIELDS)
    assert {v.name: v.number for v in file.enum_types_by_name["DataType"].values} == {"INT4": 0, "INT8": 1}


def test_defaults() -> None:
    message = distill_config.AMCTDistillConfig()  # type: ignore[attr-defined]
    assert (message.batch_num, message.group_size, message.data_dump) == (1, 1, False)
    assert message.distill_data_quant_config.ulq_quantize.dst_type == 1  # INT8
    assert message.distill_weight_quant_config.arq_distill.dst_type == 1
