"""Interventions: lanes (common random numbers), each type's effect, capacity changes, engines."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import demand
from sim.engines import run_engine
from sim.interventions import _cohort_stays, _first_in_lane, _rebuild_visits, selected
from sim.network import compile_network
from sim.scenario import ScenarioError, scenario_from_dict

BASE = {
    "name": "iv", "start": "2015-01-01", "warmup_days": 30, "run_days": 365,
    "pools": {"ward": {"capacity": 40, "ward_size": 10}, "home": {"capacity": None},
              "sd": {"capacity": 5}},
    "cohorts": {"a": {"arrivals": {"per_year": 4000},
                      "pathway": [{"stage": "acute", "pool": "ward",
                                   "los": {"dist": "lognormal", "mean": 3.0, "cv": 1.2}}]},
                "b": {"arrivals": {"per_year": 2000},
                      "pathway": [{"stage": "acute", "pool": "ward",
                                   "los": {"dist": "exponential", "mean": 2.0}}]}},
    "interventions": [
        {"name": "av", "type": "avoid", "cohorts": ["a", "b"], "fraction": 0.1, "start": "2015-01-01"},
        {"name": "dv", "type": "divert", "cohorts": ["a"], "per_year": 300, "mean_los": 2.0,
         "start": "2015-01-01", "ramp_days": 60,
         "pathway": [{"stage": "su", "pool": "home", "los": {"dist": "exponential", "mean": 5}}]},
        {"name": "sh", "type": "shorten", "cohorts": ["a"], "per_year": 300, "days_saved": 2,
         "min_los": 4, "start": "2015-03-01", "step_down": {"pool": "sd"}},
        {"name": "close", "type": "capacity", "pool": "ward", "wards": -1, "start": "2015-06-01"},
    ],
}


def _scenario(doc=None):
    return scenario_from_dict(doc or BASE)


def _keys(table, idx):
    return set(zip(table.cohort[idx].tolist(), table.candidate[idx].tolist(), strict=True))


def _picks(doc, seed=3, rep=0):
    net = compile_network(_scenario(doc))
    table = demand.admissions(net, seed, rep)  # before the levers act
    return {k: _keys(table, v) for k, v in selected(net, table, seed, rep).items()}


@pytest.mark.parametrize("which", [0, 1, 2])
def test_scaling_one_leaves_the_others_picks_unchanged(which):
    doc = copy.deepcopy(BASE)
    before = _picks(doc)
    doc["interventions"][which]["scale"] = 1.8
    after = _picks(doc)
    name = doc["interventions"][which]["name"]
    for other in before:
        if other != name:
            assert before[other] == after[other]
    assert len(after[name]) > len(before[name])  # the scaled one did pick more
    assert before[name] <= after[name]            # ... and kept everyone it had


def test_lanes_are_disjoint_and_shares_match():
    picks = _picks(BASE)
    assert not picks["av"] & picks["dv"]
    net = compile_network(_scenario())
    assert net.interventions[1].lane_start[0] == pytest.approx(0.2)  # after av's default 2 x 0.1


def test_avoid_divert_shorten_transform_the_table():
    net = compile_network(_scenario())
    seed, rep = 5, 1
    raw = demand.admissions(net, seed, rep)
    table = demand.generate(net, seed, rep)
    picks = selected(net, raw, seed, rep)
    assert table.n_patients == raw.n_patients - len(picks["av"])
    home, sd = net.pool_index("home"), net.pool_index("sd")
    # diverted patients visit only the step-up service; shortened ones gain a step-down visit
    assert np.sum(table.visit_pool == home) == len(picks["dv"])
    n_sd = np.sum(table.visit_pool == sd)
    assert 0 < n_sd <= len(picks["sh"])
    sd_los = table.visit_los[table.visit_pool == sd]
    assert np.allclose(sd_los, 2.0)  # the rest of the stay = the days saved
    # diverted stays are the short ones: their mean is mean_los (2 days) on average
    vp = raw.visit_patient()
    dv_los = raw.visit_los[np.isin(vp, picks["dv"])]
    assert dv_los.max() <= net.interventions[1].max_los


def _raw(rep, seed=11):
    return demand.admissions(compile_network(_scenario()), seed, rep)


def test_monthly_delivery_takes_each_months_number():
    """A per_year lever delivers its planned number month by month, whatever the admissions."""
    net = compile_network(_scenario())
    dv = net.interventions[1]
    assert dv.delivery == "monthly" and net.interventions[0].delivery == "independent"
    # 300 a year over 395 days, ramping from 0 over the first 60: 300 x (395 - 30) / 365
    assert dv.period_k.sum() == 300
    assert dv.period_t[0] == 0 and dv.period_t[1] == 31 and dv.period_t[-1] == 395
    assert np.all(np.diff(dv.period_t) <= 31) and np.all(dv.period_k >= 0)
    full = dv.period_k[2:-1]  # whole months after the ramp: 300 x days / 365, +-1 for the carry
    days = np.diff(dv.period_t)[2:-1]
    assert np.all(np.abs(full - 300 * days / 365) < 1)
    seen = set()
    for rep in range(3):
        raw = _raw(rep)
        p = selected(net, raw, 11, rep)["dv"]
        period = np.searchsorted(dv.period_t, raw.arrival[p], side="right") - 1
        assert np.array_equal(np.bincount(period, minlength=len(dv.period_k)), dv.period_k)
        seen.add(tuple(p[:20]))
    assert len(seen) == 3  # the same numbers, other patients


def test_monthly_delivery_is_short_only_when_the_lane_runs_out():
    doc = copy.deepcopy(BASE)
    doc["interventions"][1]["lane"] = 0.1  # about the full-size share: some months run short
    net = compile_network(_scenario(doc))
    dv = net.interventions[1]
    raw = _raw(0)

    def per_month(p):
        return np.bincount(np.searchsorted(dv.period_t, raw.arrival[p], side="right") - 1,
                           minlength=len(dv.period_k))

    got = per_month(selected(net, raw, 11, 0)["dv"])
    assert np.all(got <= dv.period_k) and np.any(got < dv.period_k)
    # every eligible patient in the lane: the same lane taken whole from day 0
    whole = copy.deepcopy(doc)
    whole["interventions"][1].update(delivery="independent", per_year=None, fraction=0.1,
                                     ramp_days=0)
    in_lane = per_month(selected(compile_network(_scenario(whole)), raw, 11, 0)["dv"])
    short = got < dv.period_k
    assert np.array_equal(got[short], in_lane[short])  # a short month took them all
    assert np.all(got <= in_lane)


def test_per_year_divert_matches_expectation():
    """Independent delivery: diverted admissions a year match per_year (after the ramp) within
    4 standard errors."""
    doc = copy.deepcopy(BASE)
    doc["interventions"][1]["delivery"] = "independent"
    net = compile_network(_scenario(doc))
    counts = []
    for rep in range(6):
        raw = _raw(rep)
        p = selected(net, raw, 11, rep)["dv"]
        t = raw.arrival[p]
        counts.append(np.sum((t >= 90) & (t < 395)) * 365 / 305)
    counts = np.array(counts)
    se = np.sqrt(300 * 365 / 305) / np.sqrt(len(counts))  # Poisson
    assert abs(counts.mean() - 300) < 4 * se


def test_capacity_wards_compile_to_capacity_changes():
    net = compile_network(_scenario())
    k = net.pool_index("ward")
    assert list(net.cc_pool) == [k]
    assert net.day_to_date(net.cc_time[0]).isoformat() == "2015-06-01"
    assert net.cc_capacity[0] == 30


def test_engines_identical_with_interventions():
    net = compile_network(_scenario())
    table = demand.generate(net, 2, 0)
    assert run_engine("numba", net, table).equals(run_engine("simpy", net, table))


@pytest.mark.parametrize(("edit", "fragment"), [
    (lambda d: d["interventions"][0].update(cohorts=["nope"]), "unknown cohort"),
    (lambda d: d["interventions"][2].update(step_down={"pool": "nowhere"}), "unknown pool"),
    (lambda d: d["interventions"][0].update(start="2030-01-01"), "within the horizon"),
    (lambda d: d["interventions"][1].update(lane=0.9), "lanes of cohort 'a' exceed 1"),
    (lambda d: d["interventions"][3].update(pool="home", wards=None, beds=-1), "unlimited"),
    (lambda d: d["interventions"][1].update(mean_los=9.0), "mean_los"),
    (lambda d: d["interventions"][0].update(scale=3.0), "exceeds the lane width"),
    (lambda d: d["interventions"][2].update(stage="nope"), "no such stage"),
])
def test_bad_interventions_are_reported_with_paths(edit, fragment):
    doc = copy.deepcopy(BASE)
    edit(doc)
    with pytest.raises(ScenarioError) as e:
        scenario_from_dict(doc)
    assert fragment in str(e.value)
    assert "interventions[" in str(e.value)


def test_phasing_and_ramp_levels():
    doc = copy.deepcopy(BASE)
    doc["interventions"][0]["phasing"] = [{"date": "2015-03-01", "level": 0.5},
                                          {"date": "2015-05-01", "level": 1.0}]
    net = compile_network(_scenario(doc))
    av, dv = net.interventions[0], net.interventions[1]
    day = {d: float((np.datetime64(d) - np.datetime64("2015-01-01")).astype(int))
           for d in ("2015-01-01", "2015-02-01", "2015-03-01", "2015-04-01", "2015-06-01")}
    lv = av.level(np.array(list(day.values())))
    assert lv[0] == 0 and lv[2] == pytest.approx(0.5) and lv[4] == 1.0
    assert 0 < lv[1] < 0.5 and 0.5 < lv[3] < 1.0
    # dv: 60-day linear ramp from its start
    assert dv.level(np.array([-1.0, 0.0, 30.0, 60.0, 90.0])) == pytest.approx([0, 0, 0.5, 1, 1])


def _first_in_lane_by_sorting(period, period_k, cand, u):
    """The definition: rank candidates by (period, u, patient), keep ranks < the period's k."""
    order = np.lexsort((cand, u, period))
    p = period[order]
    rank = np.arange(len(order)) - np.searchsorted(p, np.arange(len(period_k)))[p]
    return np.sort(cand[order][rank < period_k[p]])


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_monthly_selection_equals_ranking_by_lane_position(data):
    """The k-th-least selection per month picks what a full sort by (month, lane position,
    patient) ranks first, ties in lane position included."""
    n_periods = data.draw(st.integers(1, 5))
    n = data.draw(st.integers(0, 40))
    period = np.array(data.draw(st.lists(st.integers(0, n_periods - 1), min_size=n, max_size=n)),
                      dtype=np.int64)
    cand = np.array(data.draw(st.permutations(range(60)))[:n], dtype=np.int64)
    u = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.125, 0.25, 0.5, 0.75]), min_size=n,
                                    max_size=n)))
    k = np.array(data.draw(st.lists(st.integers(-1, 12), min_size=n_periods,
                                    max_size=n_periods)), dtype=np.int64)
    np.testing.assert_array_equal(_first_in_lane(period, k, cand, u),
                                  _first_in_lane_by_sorting(period, k, cand, u))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_rebuilt_visits_equal_lexsort_of_the_concatenation(data):
    """Kept visits (key 2 * position) and added ones, of kept patients, renumbered and sorted by
    (patient, key) with ties in concatenation order: as np.lexsort of the numpy concatenation."""
    counts = np.array(data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=8)))
    n, m = len(counts), int(counts.sum())
    visit_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    keep_patient = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    keep_visit = np.array(data.draw(st.lists(st.booleans(), min_size=m, max_size=m)), bool)
    n_add = data.draw(st.integers(0, 6))
    add_p = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=n_add, max_size=n_add)),
                     np.int64)
    add_o = np.array(data.draw(st.lists(st.integers(0, 7), min_size=n_add, max_size=n_add)),
                     np.int64)
    pool = np.arange(m, dtype=np.int32)
    los = np.arange(m) + 0.5
    stage = np.arange(m, dtype=np.int32) * 2
    add_pool = np.arange(n_add, dtype=np.int32) + 100
    add_los = np.arange(n_add) + 100.5
    add_stage = np.arange(n_add, dtype=np.int32) + 200
    got = _rebuild_visits(keep_patient, keep_visit, visit_start, pool, los, stage, add_p, add_o,
                          add_pool, add_los, add_stage)

    vp = np.repeat(np.arange(n), counts)
    kv = keep_visit & keep_patient[vp]
    pat = np.concatenate([vp[kv], add_p])
    key = np.concatenate([2 * (np.arange(m) - visit_start[vp])[kv], add_o])
    cols = [np.concatenate([x[kv], y]) for x, y in
            ((pool, add_pool), (los, add_los), (stage, add_stage))]
    alive = keep_patient[pat]
    new_index = np.cumsum(keep_patient) - 1
    pat, key, cols = new_index[pat[alive]], key[alive], [c[alive] for c in cols]
    o = np.lexsort((key, pat))
    start = np.concatenate([[0], np.cumsum(np.bincount(pat, minlength=int(keep_patient.sum())))])
    assert np.array_equal(got[0], start)
    for g, c in zip(got[1:], cols, strict=True):
        assert g.dtype == c.dtype and np.array_equal(g, c[o])


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_cohort_stays_equal_a_numpy_scatter(data):
    """Walking the cohort's patients and the stage's visits in step gives the scatter by rank."""
    counts = np.array(data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=10)))
    n, m = len(counts), int(counts.sum())
    vp = np.repeat(np.arange(n), counts)
    who = np.flatnonzero(np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n))))
    hit = np.flatnonzero(np.array(data.draw(st.lists(st.booleans(), min_size=m, max_size=m)),
                                  bool))
    visit_los = np.arange(m) + 0.25
    los, where = _cohort_stays(who, hit, vp, visit_los)
    exp_los, exp_where = np.full(len(who), np.nan), np.full(len(who), -1)
    mine = np.isin(vp[hit], who)
    at = np.searchsorted(who, vp[hit][mine])
    exp_los[at] = visit_los[hit][mine]
    exp_where[at] = hit[mine]
    assert np.array_equal(los, exp_los, equal_nan=True) and np.array_equal(where, exp_where)
