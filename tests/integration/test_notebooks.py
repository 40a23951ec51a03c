"""The notebooks under ``notebooks/`` run top to bottom, on the shared Ray session.

Each notebook runs in a fresh ``python3`` kernel of this interpreter (the kernel
spec is written for ``sys.executable``, so a ``python3`` spec elsewhere on the
machine never picks another Python) with an isolated ``KITARU_HOME``; the test
then reads what the notebook recorded from that home's database.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def run_notebook(path: Path, *, gcs_address: str, home: Path, kernel_dir: Path, timeout: int = 240):
    """Execute the notebook at ``path`` in a kernel joining the Ray session at ``gcs_address``; returns it executed."""
    import nbformat
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    spec_dir = write_kernel_spec(str(kernel_dir / "python3"))  # argv: [sys.executable, "-m", "ipykernel_launcher", ...]
    specs = KernelSpecManager(kernel_dirs=[str(Path(spec_dir).parent)])
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs)
    assert km.kernel_spec.argv[0] == sys.executable

    notebook = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": str(path.parent)}}  # the kernel's working directory
    client = NotebookClient(notebook, km=km, kernel_name="python3", timeout=timeout, resources=resources)
    env = {
        **os.environ,
        "KITARU_RAY_ADDRESS": gcs_address,
        "RAY_AUTH_MODE": "disabled",
        "KITARU_HOME": str(home),
        "KITARU_LEASE_SECONDS": "5",
    }
    client.execute(env=env)
    return notebook


def last_result(notebook) -> object:
    """The value shown by the notebook's last code cell (its ``text/plain`` repr, parsed)."""
    cell = [c for c in notebook.cells if c.cell_type == "code"][-1]
    (output,) = [o for o in cell.outputs if o.output_type == "execute_result"]
    return ast.literal_eval(output.data["text/plain"])


def test_parallel_fanout_notebook(ray_session, tmp_path):
    from kitaru_server import service_for

    from kitaru import KitaruClient
    from kitaru.testing import isolated_home

    home = tmp_path / "home"
    path = NOTEBOOKS / "01_parallel_fanout.ipynb"
    notebook = run_notebook(path, gcs_address=ray_session, home=home, kernel_dir=tmp_path / "kernels")

    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    summary = last_result(notebook)
    assert summary["status"] == "completed"
    assert summary["calls"] == 33
    assert summary["result"] == {"sum_of_squares": sum(i * i for i in range(16)), "sum_of_cubes": sum(i**3 for i in range(16))}

    with isolated_home(home):
        client = KitaruClient()
        execution = client.executions.get(summary["exec_id"])
        assert execution.status == "completed"
        assert execution.result() == summary["result"]
        calls = execution.checkpoints
        assert [c.invocation_id for c in calls] == [
            *(f"square_{i}" if i > 1 else "square" for i in range(1, 17)),
            *(f"cube_{i}" if i > 1 else "cube" for i in range(1, 17)),
            "combine",
        ]
        assert {c.status for c in calls} == {"completed"}
        assert all(len(c.attempts) == 1 for c in calls)
        assert sorted(calls[-1].parent_call_ids) == sorted(c.call_id for c in calls[:-1])
        assert [c.output.load() for c in calls[:16]] == [i * i for i in range(16)]
        assert [c.output.load() for c in calls[16:32]] == [i**3 for i in range(16)]
        # A flow defined in a notebook is recorded by value (cloudpickle), so another process can resume it.
        record = service_for(client.service_url).get_execution(execution.exec_id, with_calls=False)
        assert record["flow_ref"] == "__main__:fanout"
        assert record["flow_blob"] is not None
        assert [e.exec_id for e in client.executions.list()] == [execution.exec_id]


def test_committed_notebooks_have_no_outputs():
    import nbformat

    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        assert notebook.metadata.kernelspec.name == "python3", path.name
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: clear the outputs before committing"


def test_replay_and_wait_notebook(ray_session, tmp_path):
    notebook = run_notebook(
        NOTEBOOKS / "02_replay_and_wait.ipynb", gcs_address=ray_session, home=tmp_path / "home", kernel_dir=tmp_path / "kernels"
    )
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    printed = "".join(
        o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream"
    )
    assert "refused:" in printed and "approve" in printed
    assert last_result(notebook) == {
        "original_exec_id": True,
        "original_result": "PUBLISHED: A short post built on three facts about Ray.",
        "replayed_result": "PUBLISHED: A short post built on one edited fact about Ray.",
        "statuses": ["overridden", "completed", "completed"],
    }
