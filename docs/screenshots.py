"""Make the README's screenshots of the HTML report: `python docs/screenshots.py` from the repository root.

Runs the README's commands (export, then `explain --format html`) on the built-in ResNet-18 example and on
examples/example_net.py, opens each page in headless Chromium (tests/browser.py), opens one layer's details
and saves a PNG beside this file.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.cli import main  # noqa: E402
from tests import browser  # noqa: E402

SHOTS = (
    # (factory, input shape or None, layer whose details are opened, PNG, window height)
    (
        str(ROOT / "analyzer" / "example.py") + ":example_model",
        None,
        "layer1.0.conv1",
        "report-resnet18.png",
        1150,
    ),
    (
        str(ROOT / "examples" / "example_net.py") + ":build",
        "1,3,32,32",
        "refine",
        "report-example-net.png",
        820,
    ),
)


def shoot(factory: str, shape: str | None, layer: str, png: str, height: int, folder: Path) -> None:
    onnx_file, page = folder / "model.onnx", folder / "report.html"
    argv = ["-q", "export", factory, "-o", str(onnx_file)] + (["--input-shape", shape] if shape else [])
    if main(argv) != 0 or main(["-q", "explain", str(onnx_file), "--format", "html", "-o", str(page)]) != 0:
        raise SystemExit(f"the commands for {factory} failed")
    with browser.chromium(1280, height) as driver:
        driver.get(page.as_uri())
        driver.execute_script(
            "const row = document.querySelector(`.row[title='${arguments[0]}']`); row.click();", layer
        )
        driver.save_screenshot(str(Path(__file__).with_name(png)))
    print(f"wrote docs/{png}")


if __name__ == "__main__":
    if (why := browser.missing()) is not None:
        raise SystemExit(why)
    for shot in SHOTS:
        with tempfile.TemporaryDirectory() as tmp:
            shoot(*shot, Path(tmp))
