"""Tests for sim.scenario: schema, YAML loading, extends, overrides and error reporting."""

import datetime as dt
import json
import math
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.scenario import (
    MISSING,
    Problem,
    Scenario,
    ScenarioError,
    load_scenario,
    scenario_from_dict,
    scenario_json_schema,
    set_path,
)

MINIMAL = """\
name: single-ward-example
start: 2015-04-01          # calendar date of day 0
warmup_days: 60
run_days: 365
pools:
  ward: {capacity: 30, when_full: lose}    # capacity null = unlimited
cohorts:
  emergencies:
    arrivals: {per_year: 2190}             # Poisson, constant rate unless profiles are given
    pathway:
      - {stage: acute, pool: ward, los: {dist: lognormal, mean: 4.0, cv: 1.0}}
"""

TWO_STAGE = """\
name: two-stage
start: 2015-04-01
warmup_days: 60
run_days: 365
pools:
  acute_rdh: {capacity: 600, when_full: "overflow:escalation"}
  acute_crh: {capacity: 300}
  escalation: {capacity: 20, when_full: lose}
  community:
    capacity: 100
    ward_size: 20
    capacity_changes: [{date: 2015-10-01, capacity: 80}]
cohorts:
  feat:
    arrivals: {per_year: 2190, growth: 0.02, seasonal: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1.1, 1.1, 1.2]}
    pathway:
      - {stage: acute, pool: {acute_rdh: 0.6, acute_crh: 0.4}, los: {dist: gamma, mean: 6.1, cv: 1.4},
         next: {community: 0.15, home: 0.8, died: 0.05}}
      - {stage: community, pool: community, los: {dist: lognormal, mean: 21.3, cv: 0.9}}
"""

DELETE = object()


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def broken(tmp_path: Path, edits: dict[str, Any]) -> ScenarioError:
    """Apply edits (dotted path -> YAML snippet, or DELETE) to TWO_STAGE, save, load, return error."""
    doc = yaml.safe_load(TWO_STAGE)
    for dotted, snippet in edits.items():
        if snippet is DELETE:
            *head, last = dotted.split(".")
            node = doc
            for k in head:
                node = node[int(k) if k.isdigit() else k]
            del node[last]
        else:
            set_path(doc, dotted, yaml.safe_load(snippet))
    path = write(tmp_path, "broken.yaml", yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value


def find(err: ScenarioError, path: str) -> Problem:
    hits = [p for p in err.problems if p.path == path]
    assert hits, f"no problem at {path!r}; got:\n{err}"
    return hits[0]


# ----------------------------------------------------------------------------- valid scenarios


def test_minimal_design_example_loads(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, "min.yaml", MINIMAL))
    assert sc.name == "single-ward-example"
    assert sc.start == dt.date(2015, 4, 1)
    assert sc.horizon_days == 425
    assert sc.pools["ward"].capacity == 30
    assert sc.pools["ward"].policy == ("lose", None)
    stage = sc.cohorts["emergencies"].pathway[0]
    assert stage.pool == "ward" and stage.next is None
    assert stage.los.dist == "lognormal" and stage.los.mean == 4.0
    assert sc.cohorts["emergencies"].arrivals.growth == 0.0
    assert sc.source_path == (tmp_path / "min.yaml").resolve()


def test_two_stage_loads_with_policies(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, "two.yaml", TWO_STAGE))
    assert sc.pools["acute_rdh"].policy == ("overflow", "escalation")
    assert sc.pools["acute_crh"].policy == ("queue", None)
    assert sc.pools["community"].capacity_changes[0].date == dt.date(2015, 10, 1)
    assert sc.cohorts["feat"].pathway[0].pool == {"acute_rdh": 0.6, "acute_crh": 0.4}


def test_when_full_spellings_normalised() -> None:
    doc = yaml.safe_load(TWO_STAGE)
    doc["pools"]["acute_rdh"]["when_full"] = "overflow: escalation"
    doc["pools"]["acute_crh"]["when_full"] = {"overflow": "escalation"}
    sc = scenario_from_dict(doc)
    assert sc.pools["acute_rdh"].when_full == "overflow:escalation"
    assert sc.pools["acute_crh"].policy == ("overflow", "escalation")


def test_los_variants_valid() -> None:
    doc = yaml.safe_load(MINIMAL)
    variants = [
        {"dist": "exponential", "mean": 3},
        {"dist": "fixed", "mean": 1},
        {"dist": "lognormal", "mu": 1.0, "sigma": 0.5},
        {"dist": "gamma", "shape": 2, "scale": 1.5},
        {"dist": "weibull", "mean": 5, "cv": 0.7},
        {"dist": "mixture", "components": [
            {"dist": "exponential", "mean": 2, "weight": 0.8},
            {"dist": "exponential", "mean": 30, "weight": 0.2}]},
        {"dist": "empirical", "file": "stays.csv", "column": "days"},
    ]
    for los in variants:
        doc["cohorts"]["emergencies"]["pathway"][0]["los"] = los
        assert scenario_from_dict(doc).cohorts["emergencies"].pathway[0].los.dist == los["dist"]


def test_to_dict_round_trips(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, "two.yaml", TWO_STAGE))
    d = sc.to_dict()
    json.dumps(d)  # plain JSON-able
    assert d["start"] == "2015-04-01"
    again = scenario_from_dict(d)
    assert again.to_dict() == d
    assert again.model_dump() == sc.model_dump()


def test_resolve_path(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, "sub/min.yaml", MINIMAL))
    assert sc.resolve_path("stays.csv") == (tmp_path / "sub").resolve() / "stays.csv"
    assert sc.resolve_path("/abs/x.csv") == Path("/abs/x.csv")
    assert scenario_from_dict(yaml.safe_load(MINIMAL)).resolve_path("a.csv") == Path("a.csv")


def test_json_schema() -> None:
    schema = scenario_json_schema()
    json.dumps(schema)
    assert {"name", "start", "run_days", "pools", "cohorts", "extends"} <= set(schema["properties"])
    assert "LoS" in schema["$defs"] and "Pool" in schema["$defs"]


# ----------------------------------------------------------------------------- extends / overrides


def test_extends_deep_merge(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", TWO_STAGE)
    child = write(tmp_path, "child.yaml", """\
extends: base.yaml
name: child
pools:
  acute_rdh: {capacity: 550}
cohorts:
  feat:
    arrivals: {per_year: 3000}
""")
    sc = load_scenario(child)
    assert sc.name == "child"
    assert sc.pools["acute_rdh"].capacity == 550
    assert sc.pools["acute_rdh"].policy == ("overflow", "escalation")  # kept from base
    assert sc.pools["community"].ward_size == 20
    arr = sc.cohorts["feat"].arrivals
    assert arr.per_year == 3000 and arr.growth == 0.02 and arr.seasonal is not None
    assert len(sc.cohorts["feat"].pathway) == 2


def test_extends_chain_lists_replace_and_relative_paths(tmp_path: Path) -> None:
    write(tmp_path, "configs/base.yaml", TWO_STAGE)
    write(tmp_path, "configs/mid.yaml", "extends: base.yaml\nrun_days: 200\n")
    leaf = write(tmp_path, "configs/variants/leaf.yaml", """\
extends: ../mid.yaml
cohorts:
  feat:
    arrivals: {seasonal: null}
    pathway:
      - {stage: only, pool: acute_crh, los: {dist: exponential, mean: 2}}
""")
    sc = load_scenario(leaf)
    assert sc.run_days == 200 and sc.name == "two-stage"
    assert [s.stage for s in sc.cohorts["feat"].pathway] == ["only"]  # list replaced
    assert sc.cohorts["feat"].arrivals.seasonal is None  # null replaces
    assert sc.cohorts["feat"].arrivals.per_year == 2190


def test_extends_rebases_empirical_file(tmp_path: Path) -> None:
    write(tmp_path, "base/stays.csv", "days\n1\n2\n")
    doc = yaml.safe_load(MINIMAL)
    doc["cohorts"]["emergencies"]["pathway"][0]["los"] = {"dist": "empirical", "file": "stays.csv"}
    write(tmp_path, "base/base.yaml", yaml.safe_dump(doc))
    child = write(tmp_path, "other/child.yaml", "extends: ../base/base.yaml\n")
    sc = load_scenario(child)
    los = sc.cohorts["emergencies"].pathway[0].los
    assert sc.resolve_path(los.file).resolve() == (tmp_path / "base/stays.csv").resolve()


def test_empirical_missing_file_reported(tmp_path: Path) -> None:
    doc = yaml.safe_load(MINIMAL)
    doc["cohorts"]["emergencies"]["pathway"][0]["los"] = {"dist": "empirical", "file": "nope.csv"}
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, "emp.yaml", yaml.safe_dump(doc)))
    assert "file not found" in find(info.value, "cohorts.emergencies.pathway[0].los.file").message


def test_extends_cycle_is_error(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\nname: b\n")
    with pytest.raises(ScenarioError, match=r"extends cycle: a.yaml -> b.yaml -> a.yaml"):
        load_scenario(tmp_path / "a.yaml")


def test_extends_self_and_missing_parent(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="extends cycle"):
        load_scenario(write(tmp_path, "self.yaml", "extends: self.yaml\n"))
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(write(tmp_path, "orphan.yaml", "extends: missing.yaml\n"))


def test_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "two.yaml", TWO_STAGE)
    sc = load_scenario(path, overrides={
        "pools.acute_rdh.capacity": 500,
        "cohorts.feat.arrivals.per_year": 1000,
        "cohorts.feat.pathway[0].los.mean": 5.0,
        "cohorts.feat.pathway.1.los.cv": 0.5,
        "cohorts.feat.arrivals.overdispersion": 0.1,  # new leaf key is fine
    })
    assert sc.pools["acute_rdh"].capacity == 500
    assert sc.cohorts["feat"].arrivals.per_year == 1000
    assert sc.cohorts["feat"].arrivals.overdispersion == 0.1
    assert sc.cohorts["feat"].pathway[0].los.mean == 5.0
    assert sc.cohorts["feat"].pathway[1].los.cv == 0.5


def test_override_values_are_validated(tmp_path: Path) -> None:
    path = write(tmp_path, "two.yaml", TWO_STAGE)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides={"pools.acute_rdh.capacity": -1})
    assert str(find(info.value, "pools.acute_rdh.capacity")) == (
        "pools.acute_rdh.capacity: must be >= 0, got -1"
    )


def test_override_unknown_intermediate_key(tmp_path: Path) -> None:
    path = write(tmp_path, "two.yaml", TWO_STAGE)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides={"pools.acute_xyz.capacity": 1, "cohorts.feat.pathway[5].los": {}})
    paths = [p.path for p in info.value.problems]
    assert paths == ["pools.acute_xyz.capacity", "cohorts.feat.pathway[5].los"]
    assert "acute_xyz" in info.value.problems[0].message


def test_set_path() -> None:
    doc: dict[str, Any] = {"a": {"b": [{"c": 1}, {"c": 2}]}}
    set_path(doc, "a.b[1].c", 5)
    set_path(doc, "a.b.0.c", 7)
    set_path(doc, "a.new", [1])
    assert doc == {"a": {"b": [{"c": 7}, {"c": 5}], "new": [1]}}
    for bad in ("a.x.c", "a.b[2].c", "a.b.c", "a.new[0].z", "a..b"):
        with pytest.raises(ScenarioError):
            set_path(doc, bad, 0)


# ----------------------------------------------------------------------------- broken scenarios

CASES: list[tuple[str, dict[str, Any], str, Any, str]] = [
    # id, edits (dotted path -> YAML snippet), expected path, expected value, message fragment
    ("negative_rate", {"cohorts.feat.arrivals.per_year": "-5"},
     "cohorts.feat.arrivals.per_year", -5, "must be > 0"),
    ("zero_rate", {"cohorts.feat.arrivals.per_year": "0"},
     "cohorts.feat.arrivals.per_year", 0, "must be > 0"),
    ("rate_not_number", {"cohorts.feat.arrivals.per_year": "lots"},
     "cohorts.feat.arrivals.per_year", "lots", "must be a number"),
    ("growth_le_minus_one", {"cohorts.feat.arrivals.growth": "-1"},
     "cohorts.feat.arrivals.growth", -1, "must be > -1"),
    ("los_mean_zero", {"cohorts.feat.pathway[0].los.mean": "0"},
     "cohorts.feat.pathway[0].los.mean", 0, "must be > 0"),
    ("los_mean_negative", {"cohorts.feat.pathway[1].los.mean": "-2.5"},
     "cohorts.feat.pathway[1].los.mean", -2.5, "must be > 0"),
    ("cv_negative", {"cohorts.feat.pathway[1].los.cv": "-0.5"},
     "cohorts.feat.pathway[1].los.cv", -0.5, "must be >= 0"),
    ("cv_zero_lognormal", {"cohorts.feat.pathway[1].los.cv": "0"},
     "cohorts.feat.pathway[1].los", MISSING, "cv must be > 0 for lognormal"),
    ("los_missing_param", {"cohorts.feat.pathway.1.los.cv": DELETE},
     "cohorts.feat.pathway[1].los", MISSING, "lognormal needs mean and cv, or mu and sigma"),
    ("los_mixed_params", {"cohorts.feat.pathway[0].los.shape": "2"},
     "cohorts.feat.pathway[0].los", MISSING, "not a mix"),
    ("mixture_weights", {"cohorts.feat.pathway[1].los": "{dist: mixture, components: "
                         "[{dist: exponential, mean: 2, weight: 0.5}, {dist: fixed, mean: 9, weight: 0.3}]}"},
     "cohorts.feat.pathway[1].los", MISSING, "weights must sum to 1"),
    ("bad_dist", {"cohorts.feat.pathway[1].los.dist": "normal"},
     "cohorts.feat.pathway[1].los.dist", "normal", "must be one of"),
    ("pool_probs_sum", {"cohorts.feat.pathway[0].pool.acute_crh": "0.3"},
     "cohorts.feat.pathway[0].pool", 0.9, "must sum to 1"),
    ("pool_prob_negative", {"cohorts.feat.pathway[0].pool": "{acute_rdh: 1.2, acute_crh: -0.2}"},
     "cohorts.feat.pathway[0].pool.acute_crh", -0.2, "must be >= 0"),
    ("next_probs_sum", {"cohorts.feat.pathway[0].next.home": "0.7"},
     "cohorts.feat.pathway[0].next", 0.9, "must sum to 1"),
    ("unknown_pool", {"cohorts.feat.pathway[1].pool": "comunity"},
     "cohorts.feat.pathway[1].pool", "comunity", "unknown pool"),
    ("unknown_pool_in_mapping", {"cohorts.feat.pathway[0].pool": "{acute_rdh: 0.6, acute_xyz: 0.4}"},
     "cohorts.feat.pathway[0].pool.acute_xyz", "acute_xyz", "unknown pool"),
    ("pool_wrong_type", {"cohorts.feat.pathway[1].pool": "7"},
     "cohorts.feat.pathway[1].pool", 7, "pool name or a mapping"),
    ("unknown_stage_in_next", {"cohorts.feat.pathway[0].next": "{rehab: 0.15, home: 0.85}"},
     "cohorts.feat.pathway[0].next.rehab", "rehab", "unknown stage or exit"),
    ("pathway_cycle", {"cohorts.feat.pathway[1].next": "{acute: 0.1, home: 0.9}"},
     "cohorts.feat.pathway", MISSING, "pathway has a cycle: acute -> community -> acute"),
    ("self_loop", {"cohorts.feat.pathway[1].next": "{community: 0.1, home: 0.9}"},
     "cohorts.feat.pathway", MISSING, "pathway has a cycle: community -> community"),
    ("duplicate_stage", {"cohorts.feat.pathway[1].stage": "acute"},
     "cohorts.feat.pathway[1].stage", "acute", "duplicate stage name"),
    ("stage_named_exit", {"cohorts.feat.pathway[1].stage": "home"},
     "cohorts.feat.pathway[1].stage", "home", "reserved"),
    ("overflow_loop", {"pools.escalation.when_full": "overflow:acute_rdh"},
     "pools.acute_rdh.when_full", MISSING, "overflow chain loops back: acute_rdh -> escalation -> acute_rdh"),
    ("overflow_self", {"pools.escalation.when_full": "overflow:escalation"},
     "pools.escalation.when_full", "overflow:escalation", "overflows to itself"),
    ("unknown_overflow_target", {"pools.acute_rdh.when_full": "overflow:escalaton"},
     "pools.acute_rdh.when_full", "overflow:escalaton", "unknown overflow pool 'escalaton'"),
    ("bad_when_full", {"pools.acute_crh.when_full": "flood"},
     "pools.acute_crh.when_full", "flood", "must be 'queue', 'lose' or 'overflow:<pool>'"),
    ("negative_capacity", {"pools.acute_crh.capacity": "-1"},
     "pools.acute_crh.capacity", -1, "must be >= 0"),
    ("fractional_capacity", {"pools.acute_crh.capacity": "10.5"},
     "pools.acute_crh.capacity", 10.5, "whole number"),
    ("negative_change_capacity", {"pools.community.capacity_changes[0].capacity": "-4"},
     "pools.community.capacity_changes[0].capacity", -4, "must be >= 0"),
    ("nan", {"cohorts.feat.pathway[0].los.mean": ".nan"},
     "cohorts.feat.pathway[0].los.mean", math.nan, "must not be NaN or infinite"),
    ("infinite", {"cohorts.feat.arrivals.per_year": ".inf"},
     "cohorts.feat.arrivals.per_year", math.inf, "must not be NaN or infinite"),
    ("nan_probability", {"cohorts.feat.pathway[0].next.home": ".nan"},
     "cohorts.feat.pathway[0].next.home", math.nan, "must not be NaN or infinite"),
    ("unknown_key_typo", {"cohorts.feat.arrivals.per_year": DELETE, "cohorts.feat.arrivals.per_yaer": "2190"},
     "cohorts.feat.arrivals.per_yaer", MISSING, "unknown key (did you mean 'per_year'?)"),
    ("unknown_top_key", {"run_dayz": "3"}, "run_dayz", MISSING, "unknown key"),
    ("empty_cohorts", {"cohorts": "{}"}, "cohorts", MISSING, "must not be empty"),
    ("empty_pools", {"pools": "{}"}, "pools", MISSING, "must not be empty"),
    ("empty_pathway", {"cohorts.feat.pathway": "[]"}, "cohorts.feat.pathway", MISSING, "must not be empty"),
    ("change_after_horizon", {"pools.community.capacity_changes[0].date": "2016-06-01"},
     "pools.community.capacity_changes[0].date", dt.date(2016, 6, 1), "within the horizon"),
    ("change_before_start", {"pools.community.capacity_changes[0].date": "2015-03-31"},
     "pools.community.capacity_changes[0].date", dt.date(2015, 3, 31), "within the horizon"),
    ("missing_run_days", {"run_days": DELETE}, "run_days", MISSING, "required"),
    ("missing_los", {"cohorts.feat.pathway.1.los": DELETE}, "cohorts.feat.pathway[1].los", MISSING, "required"),
    ("bad_start_date", {"start": "soon"}, "start", "soon", "must be a date"),
    ("seasonal_wrong_length", {"cohorts.feat.arrivals.seasonal": "[1, 1, 1]"},
     "cohorts.feat.arrivals.seasonal", [1, 1, 1], "exactly 12 values"),
    ("seasonal_nonpositive", {"cohorts.feat.arrivals.seasonal[3]": "0"},
     "cohorts.feat.arrivals.seasonal[3]", 0, "must be > 0"),
    ("weekday_wrong_length", {"cohorts.feat.arrivals.weekday": "[1, 1]"},
     "cohorts.feat.arrivals.weekday", [1, 1], "exactly 7 values"),
    ("hourly_zero_sum", {"cohorts.feat.arrivals.hourly": "[" + ", ".join(["0"] * 24) + "]"},
     "cohorts.feat.arrivals.hourly", [0] * 24, "positive sum"),
    ("negative_overdispersion", {"cohorts.feat.arrivals.overdispersion": "-0.1"},
     "cohorts.feat.arrivals.overdispersion", -0.1, "must be >= 0"),
    ("negative_warmup", {"warmup_days": "-1"}, "warmup_days", -1, "must be >= 0"),
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9) or a == b
    return a == b


@pytest.mark.parametrize(("edits", "path", "value", "fragment"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_scenario(tmp_path: Path, edits: dict[str, Any], path: str, value: Any,
                         fragment: str) -> None:
    err = broken(tmp_path, edits)
    problem = find(err, path)
    assert fragment in problem.message, str(err)
    if value is MISSING:
        assert str(problem).startswith(f"{path}: ")
    else:
        assert problem.has_value and _same(problem.value, value), str(err)
        assert ", got " in str(problem)
    assert str(problem) in str(err).splitlines()


def test_error_message_format(tmp_path: Path) -> None:
    err = broken(tmp_path, {"cohorts.feat.arrivals.per_year": "-5"})
    assert str(err) == "cohorts.feat.arrivals.per_year: must be > 0, got -5"
    assert str(Problem("a.b", "required")) == "a.b: required"


def test_three_errors_reported_together(tmp_path: Path) -> None:
    text = TWO_STAGE.replace("per_year: 2190", "per_year: -5")
    text = text.replace("acute_crh: {capacity: 300}", "acute_crh: {capacity: 300, colour: red}")
    text = text.replace("pool: community, los", "pool: comunity, los")
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, "three.yaml", text))
    lines = str(info.value).splitlines()
    assert "cohorts.feat.arrivals.per_year: must be > 0, got -5" in lines
    assert "pools.acute_crh.colour: unknown key" in lines
    assert "cohorts.feat.pathway[1].pool: unknown pool, got 'comunity'" in lines
    assert len(info.value.problems) == 3


def test_field_and_cross_errors_together() -> None:
    doc = yaml.safe_load(TWO_STAGE)
    doc["cohorts"]["feat"]["pathway"][0]["los"]["mean"] = -1
    doc["pools"]["escalation"]["when_full"] = "overflow:acute_rdh"
    doc["cohorts"]["feat"]["pathway"][1]["next"] = {"acute": 1.0}
    with pytest.raises(ScenarioError) as info:
        scenario_from_dict(doc)
    paths = {p.path for p in info.value.problems}
    assert {"cohorts.feat.pathway[0].los.mean", "pools.acute_rdh.when_full",
            "cohorts.feat.pathway"} <= paths


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "syntax.yaml", "name: x\npools:\n  ward: {capacity: 30\ncohorts: {}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    (problem,) = info.value.problems
    assert problem.path == str(path.resolve())
    assert "line 4" in problem.message and "column" in problem.message


def test_yaml_duplicate_key(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.yaml", MINIMAL + "run_days: 10\n")
    with pytest.raises(ScenarioError, match=r"line 12, column 1: found duplicate key 'run_days'"):
        load_scenario(path)


def test_impossible_date_is_a_problem_with_its_path(tmp_path: Path) -> None:
    """A date YAML cannot build (month 13) is reported with the others, not raised on load."""
    text = MINIMAL.replace("start: 2015-04-01", "start: 2015-13-01").replace(
        "warmup_days: 60", "warmup_days: -1")
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, "date.yaml", text))
    found = {p.path: p.message for p in info.value.problems}
    assert "must be a date" in found["start"] and "2015-13-01" in str(info.value)
    assert "warmup_days" in found


@pytest.mark.parametrize(("text", "fragment"), [("", "file is empty"), ("- a\n- b\n", "must be a mapping")])
def test_yaml_not_a_mapping(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ScenarioError, match=fragment):
        load_scenario(write(tmp_path, "odd.yaml", text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")


def test_scenario_error_pickles() -> None:
    err = ScenarioError([Problem("a", "must be > 0", -1), Problem("b", "required")])
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) == "a: must be > 0, got -1\nb: required"
    assert again.problems[1].value is MISSING


def test_model_is_scenario(tmp_path: Path) -> None:
    assert isinstance(load_scenario(write(tmp_path, "m.yaml", MINIMAL)), Scenario)
