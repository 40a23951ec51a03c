"""Code snapshots of the container backends: the project's source travels through the stack's storage, the image
holds only dependencies.

No Google Cloud account is reachable here: Vertex AI is the local stand-in of
``kitaru.backends._standins.vertex`` (see ``tests/container_standins.py``), whose "image" has Kitaru
importable but not the project under test; the driver runs for real, joined to the tests' Ray.
"""

from __future__ import annotations

import io
import json
import os
import textwrap
import zipfile

import container_standins as standins
import pytest

from kitaru.runtime._code import CODE_SNAPSHOT_ENV, pack_project, project_root
from kitaru.testing import wait_for


def write_project(root):
    """A flow module importing a sibling module, with what a checkout also holds beside the source."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "snap_helpers.py").write_text("def shout(text):\n    return text.upper() + '!'\n")
    (root / "snap_flows.py").write_text(
        textwrap.dedent(
            """
            from kitaru import checkpoint, flow
            from snap_helpers import shout

            @checkpoint
            def greet(name: str) -> str:
                return shout(f"hello {name}")

            @flow
            def hello(name: str = "world") -> str:
                return greet(name)
            """
        )
    )
    (root / "pkg").mkdir(exist_ok=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "prompt.txt").write_text("a data file the code reads\n")
    for junk in (".venv/lib/x.py", ".git/config", "pkg/__pycache__/a.cpython-311.pyc", ".env", "dist/p.whl", "p.egg-info/PKG"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_text("not source")
    return root


def test_the_archive_holds_the_source_only_and_does_not_change_with_file_times(tmp_path):
    root = write_project(tmp_path / "project")
    data = pack_project(root)
    assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == [
        "pkg/__init__.py",
        "pkg/prompt.txt",
        "snap_flows.py",
        "snap_helpers.py",
    ]
    os.utime(root / "snap_flows.py", (1, 1))
    assert pack_project(root) == data  # the same code: the same bytes, so the same object in storage
    (root / "snap_helpers.py").write_text("def shout(text):\n    return text\n")
    assert pack_project(root) != data


def test_project_root_of_module_script_and_installed_targets(tmp_path, monkeypatch):
    root = write_project(tmp_path / "project")
    monkeypatch.syspath_prepend(str(root))
    assert project_root("snap_flows:hello") == (root.resolve(), "snap_flows:hello")
    assert project_root(f"{root / 'snap_flows.py'}:hello") == (root.resolve(), "snap_flows.py:hello")
    assert project_root("yaml:safe_load") is None  # installed: the image has it
    assert project_root("no_such_module_here:f") is None


@pytest.mark.ray
def test_a_flow_the_image_cannot_import_runs_from_its_snapshot(ray_session, kitaru_home, monkeypatch, tmp_path):
    """The project is not on the stand-in's path: its driver imports the flow (and the sibling module the
    checkpoint calls on a Ray worker) from the snapshot; a second run of unchanged code ships the same object."""
    from conftest import remote_server, resolve_database_url
    from kitaru import KitaruClient
    from kitaru.backends.vertex import VertexBackend
    from kitaru.contracts.launch import BackendState, ExecutionSpec, LaunchAction

    project = write_project(tmp_path / "project")
    monkeypatch.syspath_prepend(str(project))  # importable here, where the run is submitted
    storage = (kitaru_home / "storage").as_uri()  # the server's storage for the default stack
    with (
        remote_server(resolve_database_url(), monkeypatch) as server_url,
        standins.vertex(tmp_path / "replicas", join_ray=ray_session) as vertex,
    ):
        options = {"project": "acme", "region": "europe-west4", "api_endpoint": vertex.url, "anonymous": True}

        def run(exec_id, **more):
            backend = VertexBackend({**options, **more}, container_registry="registry.example.com")
            spec = ExecutionSpec(
                LaunchAction.RUN,
                exec_id,
                target="snap_flows:hello",
                inputs={"name": exec_id},
                server_url=server_url,
                api_key=os.environ["KITARU_API_KEY"],
                storage_url=storage,
                image=standins.VERTEX_IMAGE,
            )
            submission = backend.submit(spec)
            report = wait_for(lambda: (r := backend.status(submission)).state.is_finished and r, timeout=120, interval=0.2)
            job = vertex.jobs[submission.submission_id]
            env = {e["name"]: e.get("value") for e in job["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["env"]}
            return report, env, vertex.log(submission.submission_id.rsplit("/", 1)[-1])

        report, first, log = run("snap-1")
        assert report.state is BackendState.SUCCEEDED, log
        assert KitaruClient().executions.get("snap-1").result() == "HELLO SNAP-1!"
        report, second, log = run("snap-2")
        assert report.state is BackendState.SUCCEEDED, log
        one, two = json.loads(first[CODE_SNAPSHOT_ENV]), json.loads(second[CODE_SNAPSHOT_ENV])
        assert one["digest"] == two["digest"] and one["uri"] == two["uri"] and one["uri"].startswith(storage)
        report, without, log = run("snap-3", code_snapshot=False)
        assert CODE_SNAPSHOT_ENV not in without
        assert report.state is BackendState.FAILED and "snap_flows" in log  # the image alone cannot import it


def test_an_invoked_deployment_runs_in_the_image_it_was_deployed_with(kitaru_home, monkeypatch, tmp_path):
    """The deployment records an image that does not exist: the invoked job uses it (and fails to pull it),
    not the stack's image."""
    from conftest import remote_server, resolve_database_url
    from kitaru import KitaruClient
    from kitaru.errors import KitaruBackendError

    project = write_project(tmp_path / "project")
    monkeypatch.syspath_prepend(str(project))
    import snap_flows

    with (
        remote_server(resolve_database_url(), monkeypatch),
        standins.vertex(tmp_path / "replicas") as vertex,
    ):
        options = {"project": "acme", "region": "europe-west4", "api_endpoint": vertex.url, "anonymous": True,
                   "image": standins.VERTEX_IMAGE}  # fmt: skip
        client = KitaruClient()
        storage = (kitaru_home / "stack-storage").as_uri()
        client.stacks.create("vx", backend="vertex", storage_url=storage, backend_options=options)
        deployed = client.deployments.deploy(snap_flows.hello, stack="vx", image="registry.example.com/deployed:7")
        assert deployed.image == "registry.example.com/deployed:7"
        with pytest.raises(KitaruBackendError, match="Unable to pull the image registry.example.com/deployed:7"):
            client.deployments.invoke("hello")
        (job,) = vertex.jobs.values()
        assert {p["containerSpec"]["imageUri"] for p in job["jobSpec"]["workerPoolSpecs"]} == {"registry.example.com/deployed:7"}
        assert all(CODE_SNAPSHOT_ENV not in json.dumps(p) for p in job["jobSpec"]["workerPoolSpecs"])  # its own snapshot


def test_bad_snapshots_are_one_clear_line(tmp_path, monkeypatch):
    from kitaru.config import resolve_settings
    from kitaru.errors import KitaruUsageError
    from kitaru.runtime import _code

    root = write_project(tmp_path / "project")
    monkeypatch.setattr(_code, "_MAX_BYTES", 10)
    with pytest.raises(KitaruUsageError, match="MiB of files; move data out of it or set --backend-option code_snapshot=false"):
        pack_project(root)
    monkeypatch.setenv(CODE_SNAPSHOT_ENV, "not json")
    with pytest.raises(KitaruUsageError, match="KITARU_CODE_SNAPSHOT is not a code snapshot reference: 'not json'"):
        _code.use_code_snapshot(resolve_settings())
