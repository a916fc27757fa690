"""The one protoc command that writes `schemas/NAME.binpb` from `schemas/NAME.proto` (`tox -e proto` runs
`python -m schemas.protoc`; the drift test runs the same command into a temporary folder).

protoc is the one bundled with the pinned grpcio-tools (constraints/test.txt); a descriptor set does not depend on
protoc's release the way generated Python code does, and `schemas.messages` builds the classes from it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def protoc_command(name: str, out_dir: Path) -> list[str]:
    """protoc's arguments (run from the checkout's root) writing `out_dir/NAME.binpb` for `schemas/NAME.proto`."""
    return [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "--proto_path=.",
        "--include_imports",
        f"--descriptor_set_out={out_dir / (name + '.binpb')}",
        f"schemas/{name}.proto",
    ]


def main() -> int:
    """Write the descriptor of every `schemas/*.proto` beside it; return protoc's first non-zero exit code."""
    for proto in sorted((ROOT / "schemas").glob("*.proto")):
        run = subprocess.run(protoc_command(proto.stem, ROOT / "schemas"), cwd=ROOT, check=False)
        if run.returncode != 0:
            return run.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
