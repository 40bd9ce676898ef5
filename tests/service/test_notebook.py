"""notebooks/chapter2.ipynb runs from top to bottom against the session's server."""

from __future__ import annotations

import pytest
from server import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = REPO / "notebooks" / "chapter2.ipynb"
CELL_TIMEOUT_S = 300

pytestmark = [
    # jupyter_core warns that it is moving its paths to platformdirs; nothing of ours.
    pytest.mark.filterwarnings("ignore:Jupyter is migrating:DeprecationWarning"),
]


def test_chapter2_notebook_runs(service_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_SERVICE_URL", service_url)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(REPO)}},
    )
    client.execute()
    # The last cell printed what the service answered for ten test digits.
    outputs = notebook.cells[-1].outputs
    text = "".join(output.get("text", "") for output in outputs)
    assert "served:" in text, text
    served = text.split("served:")[1].splitlines()[0]
    truth = text.split("truth:")[1].splitlines()[0]
    assert served.strip() == truth.strip(), text
