"""The Derbyshire STP reproduced: calibrated baseline, do nothing, STP and the phased plan.

Acceptance criteria of issue 3. Each check also asserts that its estimate is precise enough
(standard error well inside the tolerance), so a pass is not luck.
"""

from pathlib import Path

import numpy as np
import pytest

import sim
from sim import demand
from sim.metrics import unconstrained_stays
from sim.network import compile_network
from sim.periods import financial_year_means

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "derbyshire"
ACUTE = ("acute_rdh", "acute_crh", "acute_ooa")
REPS = 4

#: Seed means (100% basis) per scenario: acute total, community, adult MH, dementia.
TARGETS = {
    "baseline_2015_16": {"acute": 1268.0, "community": 210.0, "adult_mh": 180.0, "older_mh": 50.0},
    "do_nothing_2020_21": {"acute": 1268.0 * 1.10, "community": 250.0, "adult_mh": 198.0,
                           "older_mh": 55.0},
    "stp_2020_21": {"acute": 1268.0 * 1.10 - (9000 * 5.4 + 15288 * 3.4 + 8543 * 9.4 + 3415 * 3.6) / 365,
                    "community": 125.0, "adult_mh": 147.0, "older_mh": 30.0},
}


def load(name):
    return sim.load_scenario(CONFIGS / f"{name}.yaml")


@pytest.fixture(scope="module")
def baseline():
    return sim.run(load("baseline_2015_16"), replications=REPS, seed=1, jobs=2)


@pytest.fixture(scope="module")
def paired():
    return sim.compare([load("do_nothing_2020_21"), load("stp_2020_21")], replications=REPS,
                       seed=1, jobs=2)


def _acute(results, metric="mean_occupancy"):
    return sum(results.metric(p, metric) for p in ACUTE)


def _check(values, target, rel):
    """Mean within rel of target, and the estimate's standard error within a third of that."""
    values = np.asarray(values, float)
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert se < rel * target / 3, f"too imprecise to test: se {se:.3g} for target {target:.4g}"
    assert abs(values.mean() - target) <= rel * target, f"{values.mean():.4g} vs {target:.4g}"


def _demand_occupancy(scenario, reps, seed=7):
    """Mean occupied beds per cohort and per pool if every stay got its bed at once, per rep."""
    net = compile_network(scenario)
    span = net.horizon - net.warmup
    by_cohort = np.zeros((reps, len(net.cohorts)))
    by_pool = np.zeros((reps, net.n_pools))
    for r in range(reps):
        t = demand.generate(net, seed, r)
        start, end = unconstrained_stays(t)
        days = np.clip(np.minimum(end, net.horizon) - np.maximum(start, net.warmup), 0, None)
        by_cohort[r] = np.bincount(t.cohort[t.visit_patient()], weights=days,
                                   minlength=len(net.cohorts)) / span
        by_pool[r] = np.bincount(t.visit_pool, weights=days, minlength=net.n_pools) / span
    return net, by_cohort, by_pool


def _without(scenario, drop):
    """The scenario without some cohorts (and the interventions on them): the other cohorts'
    streams are keyed by their own names, so their patients are unchanged."""
    doc = scenario.model_dump(mode="json")
    doc["cohorts"] = {k: v for k, v in doc["cohorts"].items() if k not in drop}
    doc["interventions"] = [iv for iv in doc["interventions"]
                            if not set(iv.get("cohorts") or []) & set(drop)]
    return sim.scenario.scenario_from_dict(doc, source=scenario.source_path)


ACUTE_COHORTS = ("feat", "acs_acute", "acs_chronic", "over65_other", "other")
NON_ACUTE = ("community", "adult_mh", "older_mh")


def test_baseline_cohort_occupancy_matches_seed_beds():
    """Each cohort's mean occupied beds (every stay, results window) within 3% of the seed."""
    seed_beds = {"feat": 293, "acs_acute": 5, "acs_chronic": 95, "over65_other": 549, "other": 326,
                 "community_admissions": 210, "adult_mh_admissions": 180, "older_mh_admissions": 50}
    scenario = load("baseline_2015_16")
    for name, beds in seed_beds.items():
        # one cohort at a time (its patients do not depend on the others); small cohorts
        # (few beds, long or few stays) need more replications for the same precision
        reps = 12 if beds > 90 and name in ACUTE_COHORTS else 80
        net, occ, _ = _demand_occupancy(_without(scenario, set(seed_beds) - {name}), reps=reps)
        _check(occ[:, 0], beds, 0.03)


@pytest.mark.parametrize("name", list(TARGETS))
def test_non_acute_demand_matches_seed_means(name):
    """Community, adult MH and dementia demand within 3% of the seed's means in all scenarios
    (the STP plans these pools at 100% of mean demand, so their constrained occupancy is lower)."""
    scenario = _without(load(name), ACUTE_COHORTS)
    net, _, occ = _demand_occupancy(scenario, reps=200)
    for pool in NON_ACUTE:
        _check(occ[:, net.pool_index(pool)], TARGETS[name][pool], 0.03)


def test_baseline_acute_tail_shares(baseline):
    """Share of acute NEL bed days in stays >= 14 / >= 30 days, from summary.json."""
    summary = baseline.summary_json()["pools"]
    weights = np.array([summary[p]["mean_occupancy"]["mean"] for p in ACUTE])
    for key, target in (("ge_14", 0.452), ("ge_30", 0.197)):
        shares = np.array([summary[p]["bed_day_share_by_stay"][key]["mean"] for p in ACUTE])
        pooled = float(weights @ shares / weights.sum())
        assert abs(pooled - target) <= 0.03, (key, pooled)
    per_rep = sum(baseline.metric(p, "bed_days") * baseline.metric(p, "ge_30") for p in ACUTE) \
        / sum(baseline.metric(p, "bed_days") for p in ACUTE)
    assert per_rep.std(ddof=1) / np.sqrt(REPS) < 0.01


@pytest.mark.parametrize("name", list(TARGETS))
def test_acute_means(name, baseline, paired):
    results = {"baseline_2015_16": baseline, "do_nothing_2020_21": paired.runs[0],
               "stp_2020_21": paired.runs[1]}[name]
    target = TARGETS[name]
    _check(_acute(results), target["acute"], 0.02)


def _crn_ratio(dn, stp, stp_other):
    """Standard error of the acute demand difference: independent runs over paired (CRN) runs."""
    demand_ = "unconstrained_mean_occupancy"  # the STP's capacitated pools truncate occupancy
    diff = _acute(stp, demand_) - _acute(dn, demand_)
    a, b = _acute(dn, demand_), _acute(stp_other, demand_)
    n = len(diff)
    se_paired = diff.std(ddof=1) / np.sqrt(n)
    se_indep = np.sqrt(a.var(ddof=1) / n + b.var(ddof=1) / n)
    return se_indep / se_paired


def test_paired_differences_are_narrower_than_independent(paired):
    """CRN: do nothing vs STP paired by replication vs the STP run with another seed.

    With 4 replications a ratio of standard errors is only known to a factor of ~2-3, so this
    fast check only guards the mechanism (no pairing would give a ratio near 1; independent
    selection of the levers' patients about 2.9)."""
    stp_other = sim.run(load("stp_2020_21"), replications=REPS, seed=2, jobs=2)
    ratio = _crn_ratio(*paired.runs, stp_other)
    print(f"CRN ratio (acute, {REPS} replications): {ratio:.2f}")
    assert ratio >= 2.0


@pytest.mark.slow
def test_paired_ci_ratio_measured():
    """Issue 3: paired CIs at least 3x narrower than independent runs, on the acute demand.

    The levers deliver their monthly numbers (``delivery: monthly``), so the difference varies
    only through which patients they take. Measured with 400 replications the ratio is 6.0
    (independent selection: 2.85). With 40 replications log(ratio) has a standard error of
    about 0.16, so the bound 3 sits more than 4 standard errors below the measured value."""
    reps = 40
    cmp = sim.compare([load("do_nothing_2020_21"), load("stp_2020_21")], replications=reps,
                      seed=11, jobs=2)
    stp_other = sim.run(load("stp_2020_21"), replications=reps, seed=12, jobs=2)
    ratio = _crn_ratio(*cmp.runs, stp_other)
    print(f"CRN ratio (acute, {reps} replications): {ratio:.2f}")
    assert ratio >= 3.0


def test_phased_capacity_steps_and_years():
    scenario = load("stp_phased_2016_2021")
    net = compile_network(scenario)
    steps = {(net.day_to_date(t).isoformat(), net.pool_names[p]): int(c)
             for t, p, c in zip(net.cc_time, net.cc_pool, net.cc_capacity, strict=True)}
    assert steps[("2018-03-01", "acute_rdh")] + steps[("2018-03-01", "acute_crh")] == 999 - 130
    assert steps[("2019-03-01", "acute_rdh")] + steps[("2019-03-01", "acute_crh")] == 999 - 180
    assert steps[("2021-03-01", "acute_rdh")] + steps[("2021-03-01", "acute_crh")] == 999 - 300
    start = {"acute_rdh": 626, "acute_crh": 373, "community": 210, "adult_mh": 180, "older_mh": 50}
    closed = {}
    for d in ("2018-03-01", "2019-03-01", "2021-03-01"):
        cap = dict(start)
        for (dd, p), c in sorted(steps.items()):
            if dd <= d:
                cap[p] = c
        closed[d] = sum(start[p] - cap[p] for p in start)
    # cumulative closures: 200 by Mar-18; "300" by Mar-19 (the seed's own items, acute +50, adult
    # MH +33, community +20, sum to 303); 438 by Mar-21 (+97 out-of-area demand = 535)
    assert closed == {"2018-03-01": 200, "2019-03-01": 303, "2021-03-01": 438}

    results = sim.run(scenario, replications=2, seed=1, jobs=2)
    fy = financial_year_means(results)
    assert list(fy["financial_year"].unique()) == ["2016/17", "2017/18", "2018/19", "2019/20",
                                                   "2020/21"]
    acute = fy[fy.pool.isin(ACUTE)].groupby("financial_year")["mean_census"].sum()
    assert acute["2016/17"] > acute["2018/19"] > acute["2020/21"]
    # Year 5 is the STP year: close to the 2020/21 STP scenario's acute mean.
    assert abs(acute["2020/21"] - TARGETS["stp_2020_21"]["acute"]) < 0.04 * 866
    # census never above the stepped capacity
    census = results.census_days[:, net.pool_index("acute_rdh"), :]
    day0 = int(np.ceil(scenario.warmup_days))
    mar21 = (np.datetime64("2021-03-01") - np.datetime64(scenario.start)).astype(int) - day0
    assert census[:, mar21 + 30:].max() <= 438
