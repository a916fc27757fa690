"""Every reference case without a simple config (both layer-type modes) through the public call, compared byte for byte with the golden JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer import NoQuantizableLayerError, create_quant_retrain_config
from tests.cases import DEFAULT_CASES, Case


@pytest.mark.parametrize("case", DEFAULT_CASES, ids=[c.name for c in DEFAULT_CASES])
def test_reference_case(case: Case, tmp_path: Path) -> None:
    out = tmp_path / "config.json"
    if case.error is not None:
        with pytest.raises(ValueError, match=case.error) as info:
            create_quant_retrain_config(str(out), case.model(), case.inputs(), layer_types=case.layer_types)
        assert isinstance(info.value, NoQuantizableLayerError)
        assert not out.exists()
        assert list(tmp_path.iterdir()) == []
        return
    report = create_quant_retrain_config(str(out), case.model(), case.inputs(), layer_types=case.layer_types)
    assert out.read_text(encoding="utf-8") == case.golden_text()
    assert report.config_file == str(out)
