"""Message classes of every `schemas/*.proto`, built at import from the descriptor committed beside it.

Each `schemas/NAME.proto` has a `schemas/NAME.binpb` beside it: the `FileDescriptorSet` protoc writes for it
(`tox -e proto`, see `schemas.protoc`). `proto_module("NAME")` adds that descriptor to protobuf's default pool
and returns a module shaped like protoc's `NAME_pb2` (`DESCRIPTOR`, one class per top-level message, one
`EnumTypeWrapper` per top-level enum, the enum values as constants), built with protobuf's public
`descriptor_pool` and `message_factory` API only. Unlike generated code, which ties itself to the protobuf
release of the protoc that wrote it, this works on every protobuf of the declared range (4.25.1 to 7.x) and a
descriptor does not depend on the protoc that wrote it.
"""

from __future__ import annotations

import functools
import types
from importlib import resources
from typing import Any

PACKAGE = "schemas"
DESCRIPTOR_SUFFIX = ".binpb"


def proto_names() -> tuple[str, ...]:
    """The NAME of every `schemas/NAME.proto` shipped with the package, sorted."""
    files = resources.files(PACKAGE).iterdir()
    return tuple(sorted(f.name[: -len(".proto")] for f in files if f.name.endswith(".proto")))


@functools.cache
def proto_module(name: str) -> types.ModuleType:
    """The message classes, enums and file descriptor of `schemas/NAME.proto`, built once per process.

    Raises:
        ValueError: there is no `schemas/NAME.proto` (the message names the ones there are), or it has no
            descriptor beside it.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from google.protobuf.internal import enum_type_wrapper

    names = proto_names()
    if name not in names:
        raise ValueError(f"no schemas/{name}.proto; the protos are: {', '.join(names) or 'none'}")
    package = resources.files(PACKAGE)
    path = package.joinpath(name + DESCRIPTOR_SUFFIX)
    if not path.is_file():
        raise ValueError(f"schemas/{name}.proto has no schemas/{name}{DESCRIPTOR_SUFFIX}: run `tox -e proto`")
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
    pool = descriptor_pool.Default()
    for file_proto in descriptor_set.file:  # dependencies come first, as protoc writes them
        try:
            pool.FindFileByName(file_proto.name)
        except KeyError:
            pool.AddSerializedFile(file_proto.SerializeToString())
    file = pool.FindFileByName(f"schemas/{name}.proto")
    classes = message_factory.GetMessageClassesForFiles([file.name], pool)
    module = types.ModuleType(f"{PACKAGE}.{name}_pb2", f"Messages of schemas/{name}.proto")
    members: dict[str, Any] = {"DESCRIPTOR": file}
    for message_name, message in file.message_types_by_name.items():
        members[message_name] = classes[message.full_name]
    for enum_name, enum in file.enum_types_by_name.items():
        members[enum_name] = enum_type_wrapper.EnumTypeWrapper(enum)
        members.update((value.name, value.number) for value in enum.values)
    module.__dict__.update(members)
    return module
