"""The cluster launcher of the container backends: ``python -m kitaru.runtime.launch [-- DRIVER ARGS]``.

Every node of a Vertex AI ``CustomJob`` or SageMaker training job runs this same command. It reads
the node's role from the platform (:mod:`kitaru.runtime.launch._roles`), starts a Ray head or
worker, and on the head waits for every worker to join, then runs the Kitaru driver
(``python -m kitaru.runtime DRIVER ARGS``, the arguments after ``--`` or the JSON list in
``KITARU_DRIVER_ARGS``) against the cluster and exits with the driver's status. A worker leaves
once the head is gone, so the job ends when the driver does.

Environment: ``KITARU_RAY_START_ARGS`` (extra ``ray start`` arguments; ``KITARU_RAY_HEAD_START_ARGS`` and
``KITARU_RAY_WORKER_START_ARGS`` for one role), ``KITARU_API_KEY_SECRET`` (the secret holding the
driver's API key, read on the head: :mod:`kitaru.runtime.launch._secrets`), ``KITARU_RAY_HEAD_ADDRESS``
(the head's ``host:port`` where host names do not resolve), ``KITARU_RAY_PORT`` (SageMaker's Ray
port), ``KITARU_RESOURCECONFIG`` (the path of ``resourceconfig.json``), ``KITARU_FAILURE_FILE``
(where a node that cannot start writes why; default SageMaker's ``/opt/ml/output/failure``, whose
text becomes the job's ``FailureReason``). Exit status: the driver's on the head, 0 for a worker
whose head finished, 2 when the node cannot start.
"""

from __future__ import annotations

from kitaru.runtime.launch._main import main
from kitaru.runtime.launch._roles import NodeRole, detect_role, from_cluster_spec, from_resourceconfig
from kitaru.runtime.launch._secrets import secret_reference

__all__ = ["NodeRole", "detect_role", "from_cluster_spec", "from_resourceconfig", "main", "secret_reference"]
