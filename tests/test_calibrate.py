"""LoS calibration: cohort means kept, tail targets met exactly, config written in place."""

import shutil
from pathlib import Path

import pytest

import sim
from sim.calibrate import SEED_SHARES, calibrate, write_config
from sim.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "derbyshire" / "baseline_2015_16.yaml"


def test_fit_meets_means_and_tail_targets():
    cal = calibrate(sim.load_scenario(CONFIG))
    for c, m in cal.means.items():
        assert cal.distribution(c).mean() == pytest.approx(m, rel=1e-9)
    total = sum(cal.bed_days.values())
    for x, target in SEED_SHARES.items():
        pooled = sum(cal.bed_days[c] * cal.distribution(c).bed_day_share(x) for c in cal.means) / total
        assert pooled == pytest.approx(target, abs=1e-6)
    assert cal.short < 1 < cal.long


def test_config_holds_the_fitted_parameters():
    """The committed baseline is what `bedflow calibrate --write` produces (up to rounding)."""
    cal = calibrate(sim.load_scenario(CONFIG))
    assert cal.fitted[14.0] == pytest.approx(SEED_SHARES[14.0], abs=1e-4)
    assert "# LoS calibrated by: bedflow calibrate" in CONFIG.read_text()


def test_write_config_roundtrip(tmp_path):
    dst = tmp_path / "baseline.yaml"
    shutil.copy(CONFIG, dst)
    targets = {14.0: 0.40, 30.0: 0.15}
    cal = calibrate(sim.load_scenario(dst), targets=targets)
    write_config(dst, cal, "test")
    again = calibrate(sim.load_scenario(dst), targets=targets)
    assert again.weight == pytest.approx(cal.weight, abs=1e-4)
    assert again.fitted[30.0] == pytest.approx(0.15, abs=1e-5)
    assert dst.read_text().count("# LoS calibrated by: test") == 1


def test_cli_calibrate_reports_and_rejects_bad_input(tmp_path, capsys):
    dst = tmp_path / "baseline.yaml"
    shutil.copy(CONFIG, dst)
    assert main(["calibrate", str(dst)]) == 0
    assert "stays >= 14 days" in capsys.readouterr().out
    assert main(["calibrate", str(dst), "--cohorts", "nope"]) == 2
    assert main(["calibrate", str(dst), "--share", "x"]) == 2
