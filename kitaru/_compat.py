"""Kitaru 0.21 names this version deliberately does not provide, each with its replacement.

``kitaru.<name>`` and ``from kitaru import <name>`` raise
:class:`~kitaru.KitaruFeatureNotAvailableError` naming what to use instead, never a
bare ``AttributeError``/``ImportError``.
"""

from __future__ import annotations

from kitaru.errors import KitaruFeatureNotAvailableError

__all__ = ["REPLACED", "unsupported"]

_STACKS = "KitaruClient().stacks (list, get, create, delete, current, use) or `kitaru stack ...`"
_SECRETS = "KitaruClient().secrets (set, show, list, delete) or `kitaru secrets ...`"
_PROJECTS = "one KITARU_HOME (or one server) per project: `kitaru init` in the project, or KITARU_HOME=..."
_COHORTS = "kitaru.diff(original, *replays) per execution"
_COMPARE = "kitaru.diff(original, *replays), or the execution pages of the web UI (`kitaru ui`)"
_AUTH = "the server's API keys (`kitaru server start` makes one; connect with `kitaru login URL --api-key KEY`)"
_STATS = 'KitaruClient().executions.statistics(group_by=["status" | "flow" | "stack"])'
_DEPLOY = "deployments are not available in this version; run the flow with <flow>.run(...) or `kitaru run`"

REPLACED: dict[str, str] = {
    "create_stack": _STACKS,
    "delete_stack": _STACKS,
    "list_stacks": _STACKS,
    "use_stack": _STACKS,
    "current_stack": _STACKS,
    "StackInfo": "kitaru.client.Stack (from " + _STACKS + ")",
    "create_secret": _SECRETS,
    "get_secret": _SECRETS,
    "list_secrets": _SECRETS,
    "delete_secret": _SECRETS,
    "Secret": "kitaru.client.SecretInfo (from " + _SECRETS + ")",
    "SecretSummary": "kitaru.client.SecretInfo (from " + _SECRETS + ")",
    "create_project": _PROJECTS,
    "delete_project": _PROJECTS,
    "get_project": _PROJECTS,
    "list_projects": _PROJECTS,
    "use_project": _PROJECTS,
    "current_project": _PROJECTS,
    "ProjectInfo": _PROJECTS,
    "ProjectCreateResult": _PROJECTS,
    "ProjectDeleteResult": _PROJECTS,
    "cohort": _COHORTS,
    "diff_cohort": _COHORTS,
    "diff_matrix": _COHORTS,
    "CohortDiff": _COHORTS,
    "CohortQuery": _COHORTS,
    "CohortResult": _COHORTS,
    "build_compare_url": _COMPARE,
    "build_compare_urls": _COMPARE,
    "build_compare_url_for_executions": _COMPARE,
    "compare_url_for_executions": _COMPARE,
    "run_sandbox_command": "a checkpoint that runs the command (subprocess.run) where it must run",
    "SandboxCommandResult": "a checkpoint that runs the command (subprocess.run) where it must run",
    "AuthAPIKey": _AUTH,
    "AuthAPIKeyWithValue": _AUTH,
    "AuthServiceAccount": _AUTH,
    "Deployment": _DEPLOY,
    "KitaruConfig": "kitaru.configure(...) to set, `kitaru info` to read the effective configuration",
    "ReplayRuntimeContext": "kitaru.is_replay() and kitaru.current_execution_id()",
    "get_replay_runtime_context": "kitaru.is_replay() and kitaru.current_execution_id()",
    "ExecutionStatisticsDimension": _STATS,
    "ExecutionStatisticsGrouping": _STATS,
    "ExecutionStatisticsMetric": _STATS,
    "ExecutionStatisticsMetricAggregation": _STATS,
    "ExecutionStatisticsMetricSource": _STATS,
    "ExecutionStatisticsTimeGranularity": _STATS,
}


def unsupported(module: str, name: str) -> KitaruFeatureNotAvailableError:
    """The error for a 0.21 name ``module.name`` that this version replaced."""
    return KitaruFeatureNotAvailableError(
        f"{module}.{name} (Kitaru 0.21) is not part of this version; use {REPLACED[name]}. See docs/migrating-from-0.21.md."
    )
