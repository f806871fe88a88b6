"""Synthetic extracts: the format `bedflow fit` reads, consistent with the run that made them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.cli import main
from sim.synth import COLUMNS, synth_episodes, write_extract
from tests.helpers import two_stage


@pytest.fixture(scope="module")
def extract():
    sc = two_stage(per_year=2000.0, p_next=0.4, warmup=0.0, run=200.0)
    return sc, *synth_episodes(sc, seed=4)


def test_columns_and_stay_numbering(extract):
    sc, df, ext = extract
    assert tuple(df.columns) == COLUMNS
    assert ext.isoformat() == "2020-07-19T00:00:00"  # 2020-01-01 + 200 days
    g = df.groupby("spell_id")["stay_number"]
    assert (g.min() == 1).all()
    assert (g.max() == g.count()).all()
    # a stay 2 is always in rehab, a stay 1 always in acute
    assert set(df.loc[df.stay_number == 2, "pool"]) == {"rehab"}
    assert set(df.loc[df.stay_number == 1, "pool"]) == {"acute"}


def test_times_destinations_and_open_stays(extract):
    sc, df, ext = extract
    adm = pd.to_datetime(df.admitted, format="ISO8601")
    dis = pd.to_datetime(df.discharged.where(df.discharged != ""), format="ISO8601")
    assert adm.min() >= pd.Timestamp("2020-01-01") and adm.max() < pd.Timestamp(ext)
    closed = dis.notna()
    assert (dis[closed] >= adm[closed]).all() and (dis[closed] <= pd.Timestamp(ext)).all()
    # open stays are the last stay of their spell and have no destination
    last = df.stay_number == df.groupby("spell_id")["stay_number"].transform("max")
    assert (last[~closed]).all()
    assert (df.destination[~closed] == "").all()
    assert (df.destination[closed & last] == "home").all()  # two_stage exits are all home
    assert (df.destination[~last] == "").all()
    # a transfer: stay 2 starts exactly when stay 1 ends (unlimited rehab: no wait)
    s1 = df[df.stay_number == 1].set_index("spell_id")
    s2 = df[df.stay_number == 2].set_index("spell_id")
    assert (s1.loc[s2.index, "discharged"] == s2["admitted"]).all()
    # stay-2 share among finished acute stays estimates p_next = 0.4 (binomial 4-sigma band)
    fin = s1[s1.discharged != ""]
    p = fin.index.isin(s2.index).mean()
    assert abs(p - 0.4) < 4 * np.sqrt(0.4 * 0.6 / len(fin))


def test_cli_writes_csv_and_parquet(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(
        "name: t\nstart: 2021-03-01\nrun_days: 50\npools: {w: {capacity: null}}\n"
        "cohorts: {c: {arrivals: {per_year: 3650}, pathway: "
        "[{stage: s, pool: w, los: {dist: exponential, mean: 2}}]}}\n")
    out = tmp_path / "e.csv"
    assert main(["synth", str(cfg), "--out", str(out), "--years", "0.5", "--seed", "2"]) == 0
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert tuple(df.columns) == COLUMNS
    # 0.5 years of a 10-a-day Poisson stream: 1825 expected, 5-sigma band
    assert abs(len(df) - 1825) < 5 * np.sqrt(1825)
    pq = write_extract(df, tmp_path / "e.parquet")
    assert pd.read_parquet(pq).equals(df)


def test_cli_bad_years_exits_2(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(
        "name: t\nstart: 2021-03-01\nrun_days: 50\npools: {w: {capacity: null}}\n"
        "cohorts: {c: {arrivals: {per_year: 365}, pathway: "
        "[{stage: s, pool: w, los: {dist: exponential, mean: 2}}]}}\n")
    assert main(["synth", str(cfg), "--out", str(tmp_path / "e.csv"), "--years", "0"]) == 2
    assert not (tmp_path / "e.csv").exists()
    assert "Traceback" not in capsys.readouterr().err
