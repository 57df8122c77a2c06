"""Every notebook runs top to bottom (CI-sized settings) and is committed without outputs."""

import json
import os
import pathlib
import re
import sys

import nbclient
import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "tl_jax_test"  # this interpreter, whatever kernels the machine has installed


def test_there_are_notebooks_and_none_holds_outputs():
  assert len(NOTEBOOKS) >= 3, NOTEBOOKS
  for path in NOTEBOOKS:
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
      if cell.cell_type == "code":
        assert not cell.outputs and cell.execution_count is None, (
            f"{path.name} cell {i} holds outputs: clear them before committing "
            f"(jupyter nbconvert --clear-output --inplace {path.relative_to(ROOT)})")


def _outputs(nb) -> tuple[str, set[str]]:
  text, kinds = [], set()
  for cell in nb.cells:
    for out in cell.get("outputs", []):
      text.append(out.get("text", "") + out.get("data", {}).get("text/plain", ""))
      kinds |= set(out.get("data", {}))
  return "".join(text), kinds


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
  spec = tmp_path / "kernels" / "kernels" / KERNEL
  spec.mkdir(parents=True)
  (spec / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "tl_jax test", "language": "python"}))
  monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "kernels"))
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT)] + sys.path))  # this checkout's tl_jax
  monkeypatch.setenv("TL_JAX_NOTEBOOK_RUNS", str(tmp_path / "runs"))
  monkeypatch.setenv("MPLBACKEND", "Agg")
  nb = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(nb, timeout=600, kernel_name=KERNEL,
                          resources={"metadata": {"path": str(path.parent)}}).execute()
  text, kinds = _outputs(nb)
  assert "image/png" in kinds, f"{path.name} showed no figure"
  if path.stem == "01_tour":
    top1 = next(line for line in text.splitlines() if re.match(r"0\.\d{3}  ", line))
    assert "cat" in top1, text[:500]  # chelsea() is a tabby: ImageNet's top class is a cat
    assert "test accuracy" in text
  if path.stem == "02_strategies":
    assert all(s in text for s in ("linear_probe", "top_1_stage", "full"))
