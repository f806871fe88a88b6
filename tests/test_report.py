"""`bedflow report`: one self-contained HTML file, checked as text and in headless Chromium."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
import yaml

import sim
from sim import plots
from sim.cli import main
from sim.report import png_size
from sim.scenario import scenario_from_dict
from tests.test_plots import baseline_run  # noqa: F401  (a session fixture: one run for both)

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0"]


class Tags(HTMLParser):
    """Collect every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def baseline_report(baseline_run):  # noqa: F811  (the imported fixture)
    assert main(["report", str(baseline_run)]) == 0
    return baseline_run / "report.html"


def test_report_is_self_contained_and_complete(baseline_report):
    text = baseline_report.read_text(encoding="utf-8")
    run_dir = baseline_report.parent
    manifest = json.loads((run_dir / "manifest.json").read_text())
    parser = Tags()
    parser.feed(text)
    imgs = [a for t, a in parser.tags if t == "img"]
    pools = list(manifest["scenario"]["pools"])
    assert len(imgs) == len(pools) * len(plots.RUN_PLOTS)
    for attrs in imgs:
        src = attrs["src"]
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png_size(png) == (int(attrs["width"]), int(attrs["height"]))
    # nothing fetched from elsewhere: no external src/href, no stylesheet or script links
    for tag, attrs in parser.tags:
        for key in ("src", "href"):
            value = attrs.get(key)
            assert value is None or value.startswith("data:"), (tag, key, value)
        assert tag not in ("link", "script", "iframe")
    for heading in ("1. Objectives", "2. Logic", "3. Data", "4. Experimentation",
                    "5. Implementation", "6. Code access", "Beds needed"):
        assert f">{heading}<" in text
    assert "<td class=\"text\">seed</td><td class=\"text\">7</td>" in text
    assert manifest["bedflow_version"] in text
    for cohort in manifest["scenario"]["cohorts"]:
        assert cohort in text
    # the embedded YAML is the scenario that ran, and it loads back
    block = re.search(r"<pre>(.*?)</pre>", text, re.S).group(1)
    doc = yaml.safe_load(html.unescape(block))
    assert doc == manifest["scenario"]
    assert scenario_from_dict(doc).name == manifest["scenario"]["name"]


def test_report_lists_interventions_and_capacity_changes(tmp_path):
    scenario = scenario_from_dict({
        "name": "levers", "start": "2020-01-01", "warmup_days": 30, "run_days": 200,
        "pools": {"ward": {"capacity": 40, "ward_size": 10,
                           "capacity_changes": [{"date": "2020-04-01", "capacity": 35}]},
                  "home": {"capacity": None}},
        "cohorts": {"p": {"arrivals": {"per_year": 2500}, "pathway": [
            {"stage": "s", "pool": "ward", "los": {"dist": "gamma", "mean": 4.0, "cv": 1.1}}]}},
        "interventions": [
            {"name": "falls service", "type": "avoid", "cohorts": ["p"], "fraction": 0.1,
             "start": "2020-02-01", "ramp_days": 30},
            {"name": "close a ward", "type": "capacity", "pool": "ward", "wards": -1,
             "start": "2020-06-01"}],
    })
    sim.run(scenario, replications=2, seed=1, jobs=1).save(tmp_path)
    assert main(["report", str(tmp_path), "--output", str(tmp_path / "r.html")]) == 0
    text = (tmp_path / "r.html").read_text()
    assert "falls service" in text and "10.0% of admissions" in text and "ramp over 30 days" in text
    assert "close a ward" in text and "-1 wards" in text
    assert "2020-04-01: 35" in text
    assert "gamma, mean 4 days, cv 1.1" in text


def test_report_of_a_folder_that_is_not_a_run_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a run folder" in err and "Traceback" not in err


# --------------------------------------------------------------------------- the browser


def find_or_install_chromium() -> str:
    """Chromium's path; installs Debian's package when missing, else skips with the reason."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.geteuid() != 0:
        pytest.skip("Chromium is not installed and installing it (apt-get) needs root")
    if shutil.which("apt-get") is None:
        pytest.skip("Chromium is not installed and this system has no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        except subprocess.TimeoutExpired:
            pytest.skip(f"installing Chromium timed out: {' '.join(cmd)}")
        if done.returncode != 0:
            pytest.skip(f"cannot install Chromium ({' '.join(cmd)} failed): "
                        f"{done.stderr.strip()[-300:]}")
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("apt-get installed chromium but no chromium binary is on PATH")
    return path


@pytest.fixture(scope="module")
def chromium():
    return find_or_install_chromium()


# Runs first in <head>: records script errors, failed resources and console.error calls.
CAPTURE = """<script>
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t !== window ? 'resource failed: ' + String(t.src || t.href || t.tagName).slice(0, 120)
                                          : 'error: ' + e.message);
}, true);
window.addEventListener('unhandledrejection', function (e) { window.__errors.push('rejection: ' + e.reason); });
var __ce = console.error;
console.error = function () { window.__errors.push('console.error: ' + Array.from(arguments).join(' ')); __ce.apply(console, arguments); };
</script>"""

# Runs after load: writes each image's state and the errors into the DOM for --dump-dom.
CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images).map(function (im) {
    var r = im.getBoundingClientRect();
    return {alt: im.alt, complete: im.complete, naturalWidth: im.naturalWidth,
            naturalHeight: im.naturalHeight, attrWidth: +im.getAttribute('width'),
            shownWidth: r.width, shownHeight: r.height};
  });
  var pre = document.createElement('pre');
  pre.id = 'bedflow-check';
  pre.textContent = JSON.stringify({images: imgs, errors: window.__errors, title: document.title});
  document.body.appendChild(pre);
});
</script>"""


def test_report_loads_in_headless_chromium_with_every_image_displayed(baseline_report, chromium,
                                                                      tmp_path):
    text = baseline_report.read_text(encoding="utf-8")
    page = text.replace("<head>", "<head>" + CAPTURE, 1).replace("</body>", CHECK + "</body>", 1)
    target = tmp_path / "check.html"
    target.write_text(page, encoding="utf-8")
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=20000", "--dump-dom", target.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="bedflow-check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the check script did not run; stderr: {done.stderr[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))
    assert result["errors"] == []
    assert result["title"].startswith("bedflow report:")
    parser = Tags()
    parser.feed(text)
    assert len(result["images"]) == sum(1 for t, _ in parser.tags if t == "img") > 0
    for im in result["images"]:
        assert im["complete"] and im["naturalWidth"] > 0 and im["naturalHeight"] > 0, im
        assert im["naturalWidth"] == im["attrWidth"], im
        assert im["shownWidth"] > 0 and im["shownHeight"] > 0, im
    console = [line for line in done.stderr.splitlines() if ":CONSOLE(" in line]
    assert console == [], console


def test_model_description_states_discharge_rules_and_cut_policies():
    from sim.report import stress_des

    doc = {"name": "rules", "start": "2020-01-01", "warmup_days": 0, "run_days": 30,
           "pools": {"a": {"capacity": 5, "on_reduction": "move:b",
                           "discharges": {"weekday": [2, 2, 2, 2, 2, 1, 0], "hours": [8, 20.5]}},
                     "b": {"capacity": None}},
           "cohorts": {"c": {"arrivals": {"per_year": 100}, "pathway": [
               {"stage": "s", "pool": "a", "los": {"dist": "exponential", "mean": 2}}]}}}
    text = stress_des(scenario_from_dict(doc), {"replications": 2, "seed": 1, "engine": "numba"})
    assert "move to b" in text and "stay until the census fits" in text
    assert "Sat 50%, Sun 0%; 08:00-20:30" in text and "any time" in text
