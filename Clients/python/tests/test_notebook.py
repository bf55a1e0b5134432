"""A notebook using the %%selfanchor magic, executed headless; its saved output holds the streamed steps."""
import os
import pathlib

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_cell_magic_renders_plans_and_steps(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext selfanchor"),
        nbformat.v4.new_code_cell("%%selfanchor --model test --max-tokens 80\n"
                                  "A farmer has 12 cows and buys 7 more. How many cows does he have?"),
        nbformat.v4.new_code_cell("_['strategy']"),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "Clients" / "python"))
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    path = tmp_path / "solved.ipynb"
    nbformat.write(notebook, path)
    saved = nbformat.read(path, as_version=4)
    outputs = saved.cells[1].outputs
    display = next(o for o in outputs if o.output_type == "display_data")
    plain = display.data["text/plain"]
    assert "Plan 1:" in plain and "Step 1:" in plain
    assert "<b>Plan 1:</b>" in display.data["text/html"]
    result = next(o for o in outputs if o.output_type == "execute_result")
    assert "'strategy': 'self-anchor'" in result.data["text/plain"]
    assert saved.cells[2].outputs[0].data["text/plain"] == "'self-anchor'"
