"""Nothing lost (issue 6): every file QuantScope writes (config, report, mapping, annotated graph, exported ONNX
and its weights) goes through a temporary file in the target folder and a rename. A failed or interrupted
write leaves the previous file as it was and no temporary file behind; a directory, a folder that cannot be
created or an unwritable folder as the target are clear errors.

Failures are injected by making `os.replace` (the rename) or `os.fsync` (the write) fail, or raise
KeyboardInterrupt. Needs no torch: the models are the small committed files in `tests/fixtures/`.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest

from analyzer import OutputError, create_quant_retrain_config_from_onnx
from analyzer.annotate import write_annotated
from analyzer.api import analyze_onnx
from analyzer.cli import main
from graph.files import write_atomic
from graph.mapping import write_mapping

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY_DYNAMO = FIXTURES / "tiny_dynamo.onnx"
TINY_TS_MAPPING = FIXTURES / "tiny_torchscript.mapping.json"
PREVIOUS = b"previous content, must survive\n"


class CliFailed(Exception):
    """The CLI returned a non-zero exit code."""


def _config(target: Path) -> None:
    create_quant_retrain_config_from_onnx(target, TINY_DYNAMO)


def _report(target: Path) -> None:
    code = main(["-q", "explain", str(TINY_DYNAMO), "--format", "json", "-o", str(target)])
    if code:
        raise CliFailed(code)


def _mapping(target: Path) -> None:
    write_mapping(target, json.loads(TINY_TS_MAPPING.read_text(encoding="utf-8")))


def _annotated(target: Path) -> None:
    write_annotated(TINY_DYNAMO, analyze_onnx(TINY_DYNAMO)[0], target)


def _exported_onnx(target: Path) -> None:
    """The exporter's writer (ONNX file + weights beside it), on the fixture with made-up weights."""
    ir = pytest.importorskip("onnx_ir")
    from graph.export import write_model

    model = onnx.load(str(TINY_DYNAMO), load_external_data=False)
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.DEFAULT
            count = 1
            for dim in tensor.dims:
                count *= dim
            tensor.raw_data = b"\0" * (4 * count)
    write_model(ir.from_proto(model), target, target.name + ".data")


WRITERS: dict[str, Callable[[Path], None]] = {
    "config": _config,
    "report": _report,
    "mapping": _mapping,
    "annotated": _annotated,
    "exported-onnx": _exported_onnx,
}


def _folder(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()} | {
        p.name + "/": b"" for p in path.iterdir() if p.is_dir()
    }


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_writer_replaces_the_previous_file_through_a_rename_in_the_folder(
    writer: Callable[[Path], None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out" / "target.file"
    target.parent.mkdir()
    target.write_bytes(PREVIOUS)
    os.chmod(target, 0o640)
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        renames.append((os.fspath(src), os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    writer(target)
    assert target.read_bytes() != PREVIOUS and target.stat().st_size > 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # an overwritten file keeps its permissions
    into_target = [src for src, dst in renames if Path(dst) == target]
    assert into_target, renames
    assert all(target.parent in Path(src).parents for src in into_target)  # written beside it, then renamed
    leftovers = [name for name in os.listdir(target.parent) if name.endswith(".tmp")]
    assert not leftovers


def _fail_rename(monkeypatch: pytest.MonkeyPatch) -> type[BaseException]:
    def replace(src: Any, dst: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", replace)
    return OSError


def _interrupt_rename(monkeypatch: pytest.MonkeyPatch) -> type[BaseException]:
    def replace(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace)
    return KeyboardInterrupt


def _fail_write(monkeypatch: pytest.MonkeyPatch) -> type[BaseException]:
    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync)
    return OSError


FAILURES = {"rename-fails": _fail_rename, "interrupted": _interrupt_rename, "write-fails": _fail_write}


# the ONNX writer (onnx_ir.save) does not fsync, so the failed-write injection does not apply to it
COMBINATIONS = [
    pytest.param(writer, failure, id=f"{writer_id}-{failure_id}")
    for writer_id, writer in WRITERS.items()
    for failure_id, failure in FAILURES.items()
    if not (writer is _exported_onnx and failure is _fail_write)
]


@pytest.mark.parametrize(("writer", "failure"), COMBINATIONS)
def test_failed_or_interrupted_write_leaves_the_previous_file(
    writer: Callable[[Path], None],
    failure: Callable[[pytest.MonkeyPatch], type[BaseException]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = tmp_path / "target.file"
    target.write_bytes(PREVIOUS)
    (tmp_path / "target.file.data").write_bytes(PREVIOUS)  # the exported ONNX's weights, if any
    before = _folder(tmp_path)
    expected = failure(monkeypatch)
    if writer is _report:  # the CLI turns both into an exit code (2, or 130 for an interrupt)
        expected = CliFailed
    with pytest.raises(expected) as caught:
        writer(target)
    if isinstance(caught.value, OSError) and writer in (_config, _annotated):
        assert isinstance(caught.value, OutputError)
        assert str(target) in str(caught.value)
    monkeypatch.undo()
    assert _folder(tmp_path) == before  # previous files intact, no temporary file or folder left
    if writer is _report:
        err = capsys.readouterr().err
        assert err.startswith(("quantscope: error: cannot write", "quantscope: interrupted")), err


def test_new_file_gets_the_umask_mode(tmp_path: Path) -> None:
    umask = os.umask(0o027)
    try:
        written = write_atomic(tmp_path / "new" / "deeper" / "c.json", "{}")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(written.stat().st_mode) == 0o640
    assert written.read_text(encoding="utf-8") == "{}"


def test_target_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "c.json").mkdir()
    with pytest.raises(OutputError, match=r"c\.json.*is a directory"):
        create_quant_retrain_config_from_onnx(tmp_path / "c.json", TINY_DYNAMO)
    assert list((tmp_path / "c.json").iterdir()) == []


def test_folder_that_cannot_be_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_bytes(PREVIOUS)
    with pytest.raises(OutputError, match=r"cannot create the folder .*file/sub"):
        create_quant_retrain_config_from_onnx(tmp_path / "file" / "sub" / "c.json", TINY_DYNAMO)
    assert main(["generate", str(TINY_DYNAMO), "-o", str(tmp_path / "file" / "c.json")]) == 2
    assert "cannot create the folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_bytes() == PREVIOUS


def test_unwritable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root every folder is writable; the refusal is then simulated at the same call."""
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "c.json").write_bytes(PREVIOUS)
    os.chmod(folder, 0o555)
    try:
        if os.geteuid() == 0:
            real_open = os.open

            def refusing(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
                if flags & os.O_CREAT and Path(os.fsdecode(path)).parent == folder:
                    raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
                return real_open(path, flags, mode, **kwargs)

            monkeypatch.setattr(os, "open", refusing)
        with pytest.raises(OutputError, match=r"cannot write .*c\.json.*Permission denied"):
            create_quant_retrain_config_from_onnx(folder / "c.json", TINY_DYNAMO)
    finally:
        os.chmod(folder, 0o755)
    monkeypatch.undo()
    assert _folder(folder) == {"c.json": PREVIOUS}


def test_symlink_target_is_replaced_not_written_through(tmp_path: Path) -> None:
    """A link planted at the target cannot redirect the write to the file it points to."""
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(PREVIOUS)
    link = tmp_path / "out" / "c.json"
    link.parent.mkdir()
    link.symlink_to(elsewhere)
    create_quant_retrain_config_from_onnx(link, TINY_DYNAMO)
    assert elsewhere.read_bytes() == PREVIOUS
    assert not link.is_symlink()
    assert link.read_text(encoding="utf-8") == (FIXTURES / "tiny.config.json").read_text(encoding="utf-8")


def test_long_target_names_fit(tmp_path: Path) -> None:
    """The temporary name is derived from the target's: it must fit the 255-byte name limit too."""
    target = tmp_path / ("ü" * 120 + ".json")  # 245 bytes in UTF-8
    create_quant_retrain_config_from_onnx(target, TINY_DYNAMO)
    assert [path.name for path in tmp_path.iterdir()] == [target.name]


@pytest.mark.parametrize("writer", WRITERS.values(), ids=WRITERS.keys())
def test_read_only_target_is_refused(
    writer: Callable[[Path], None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename would replace a read-only file without asking; a write to it would fail: refuse it."""
    target = tmp_path / "target.file"
    target.write_bytes(PREVIOUS)
    os.chmod(target, 0o444)
    if os.geteuid() == 0:  # root may write anything: make the permission check see what a user would
        real_access = os.access

        def access(path: Any, mode: int, **kwargs: Any) -> bool:
            if Path(os.fsdecode(path)) == target and mode & os.W_OK:
                return False
            return real_access(path, mode, **kwargs)

        monkeypatch.setattr(os, "access", access)
    before = _folder(tmp_path)
    with pytest.raises((OSError, CliFailed)) as caught:
        writer(target)
    if writer in (_config, _annotated):
        assert isinstance(caught.value, OutputError)
        assert "read-only" in str(caught.value) and str(target) in str(caught.value)
    assert _folder(tmp_path) == before
