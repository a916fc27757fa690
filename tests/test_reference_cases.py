"""Every reference case without a simple config (both layer-type modes), and every case of create_quant_config
(SPEC 10) and create_distill_config (SPEC 11), through the public call, compared byte for byte with the golden
JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer import ConfigError, NoQuantizableLayerError
from tests.cases import DEFAULT_CASES, DISTILL_CASES, PTQ_CASES, Case

REFERENCE = DEFAULT_CASES + PTQ_CASES + DISTILL_CASES
# the error each kind's error cases raise: no layer (retrain); AMCT's checks (ptq); either (distill)
ERRORS: dict[str, tuple[type[Exception], ...]] = {
    "retrain": (NoQuantizableLayerError,),
    "ptq": (ConfigError,),
    "distill": (ConfigError, NoQuantizableLayerError),
}


@pytest.mark.parametrize("case", REFERENCE, ids=[c.name for c in REFERENCE])
def test_reference_case(case: Case, tmp_path: Path) -> None:
    out = tmp_path / "config.json"
    if case.error is not None:
        with pytest.raises(ValueError, match=case.error) as info:
            case.call(str(out))
        assert isinstance(info.value, ERRORS[case.kind])
        assert not out.exists()
        assert list(tmp_path.iterdir()) == []
        return
    report = case.call(str(out))
    assert out.read_text(encoding="utf-8") == case.golden_text()
    assert report.config_file == str(out)
    assert report.kind == case.kind
