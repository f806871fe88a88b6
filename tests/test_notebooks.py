"""The notebooks are stored without outputs and execute top to bottom with few replications."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: Per notebook: the reduced parameters (environment) and the figures it must show.
REDUCED = {
    "01_derbyshire_stp.ipynb": ({"BEDFLOW_NB_REPLICATIONS": "2", "BEDFLOW_NB_JOBS": "1"}, 5),
    "02_sensitivity.ipynb": ({"BEDFLOW_NB_REPLICATIONS": "1", "BEDFLOW_NB_SOBOL_N": "2",
                              "BEDFLOW_NB_JOBS": "1"}, 2),
}


@pytest.mark.parametrize("name", list(REDUCED))
def test_notebook_is_stored_clean_and_executes(name, monkeypatch):
    path = NOTEBOOKS / name
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "store notebooks without outputs"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "BEDFLOW_NB_REPLICATIONS" in params[0].source
    env, n_figures = REDUCED[name]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # The kernel inherits this environment; the python3 kernel spec runs `python` from PATH,
    # so put this interpreter (the project's venv) first.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(images) >= n_figures, "the notebook shows its figures"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "replications" in text
    reps = env["BEDFLOW_NB_REPLICATIONS"]
    assert f"replications {reps}" in text or f"{reps} replications" in text  # reduced count used
