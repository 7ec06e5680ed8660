"""Run notebooks/screen_dataset.ipynb top to bottom in a real kernel (this interpreter), no network."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "screen_dataset.ipynb"


@pytest.fixture()
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernelspec named python3 that runs this interpreter, found before any other."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "preflight tests", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for name in ("PREFLIGHT_SCREEN_DIR", "PREFLIGHT_SCREEN_POLICY", "PREFLIGHT_SCREEN_WORKERS", "PREFLIGHT_SCREEN_OUT"):
        monkeypatch.delenv(name, raising=False)


def _run() -> Any:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=300, allow_errors=False,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()
    return nb


def _outputs(nb: Any) -> list[dict[str, Any]]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def _texts(nb: Any) -> str:
    parts = []
    for out in _outputs(nb):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        for kind in ("text/plain", "text/html"):
            if kind in out.get("data", {}):
                parts.append(out["data"][kind])
    return "\n".join(parts)


def test_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_screens_the_samples(kernel_env: None) -> None:
    nb = _run()
    text = _texts(nb)
    n = len([p for p in (ROOT / "sample_images").iterdir() if p.suffix in (".jpg", ".png")])
    assert f"{n} image file(s) found" in text
    assert f"images: {n}" in text  # the printed summary
    html = [o["data"]["text/html"] for o in _outputs(nb) if "text/html" in o.get("data", {})]
    assert any("pass rate" in h and "<table" in h for h in html)  # the summary table
    assert any("RESOLUTION_TOO_LOW" in h for h in html)  # rocket.jpg is 640x427: in the codes table
    pngs = [o for o in _outputs(nb) if "image/png" in o.get("data", {})]
    assert len(pngs) >= 4  # codes bar chart, histograms, pose scatter, failing gallery
    assert "Traceback" not in text
    assert "face size (px): " in text and "pose measured for" in text


def test_notebook_on_another_folder_with_nothing_measured(kernel_env: None, tmp_path: Path, dataset: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Corrupt files in the gallery, and a policy without face checks: all face columns empty."""
    folder = tmp_path / "mine"
    shutil.copytree(dataset / "broken", folder / "broken")
    shutil.copytree(dataset / "variants" / "biden", folder / "biden")
    monkeypatch.setenv("PREFLIGHT_SCREEN_DIR", str(folder))
    monkeypatch.setenv("PREFLIGHT_SCREEN_POLICY", "progeny_document")
    monkeypatch.setenv("PREFLIGHT_SCREEN_WORKERS", "1")
    monkeypatch.setenv("PREFLIGHT_SCREEN_OUT", str(tmp_path / "table.parquet"))
    nb = _run()
    text = _texts(nb)
    assert "progeny_document" in text and "FAILED_TO_READ_IMAGE" in text
    assert "face size (px): 0 of 29 measured" in text  # no face checks: nothing to draw, and it says so
    assert "pose measured for 0 of 29 images" in text
    pngs = [o for o in _outputs(nb) if "image/png" in o.get("data", {})]
    assert len(pngs) >= 4
    assert (tmp_path / "table.parquet").exists()
