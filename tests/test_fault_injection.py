"""The whole fault list of issue 16, replayed by benchmarks/fault_injection.py (minutes: -m soak)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.soak
def test_every_fault_is_survived_without_data_loss_or_an_unclear_message(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import fault_injection
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    code = fault_injection.main(["--keep", str(tmp_path)])
    out = capsys.readouterr().out
    assert "data lost 0, unclear messages 0" in out, out
    assert code == 0, out
