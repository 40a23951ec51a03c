"""The public surface is deliberate: pin the exported names, and keep `import kitaru` light."""

import subprocess
import sys

import kitaru

EXPECTED = {
    "Checkpoint",
    "CheckpointFuture",
    "FailureOrigin",
    "Flow",
    "FlowHandle",
    "KitaruBackendError",
    "KitaruCancelledError",
    "KitaruClient",
    "KitaruConflictError",
    "KitaruContextError",
    "KitaruDivergenceError",
    "KitaruError",
    "KitaruExecutionError",
    "KitaruFeatureNotAvailableError",
    "KitaruNotFoundError",
    "KitaruRuntimeError",
    "KitaruStateError",
    "KitaruTimeoutError",
    "KitaruUsageError",
    "KitaruUserCodeError",
    "KitaruWaitAbortedError",
    "KitaruWaitValidationError",
    "checkpoint",
    "configure",
    "connect",
    "current_execution_id",
    "flow",
    "is_replay",
    "llm",
    "load",
    "log",
    "progress",
    "register_serializer",
    "save",
    "wait",
}


def test_exported_names_are_pinned():
    assert set(kitaru.__all__) == EXPECTED
    for name in kitaru.__all__:
        assert getattr(kitaru, name) is not None


def test_import_starts_nothing_heavy():
    heavy = ("ray", "sqlalchemy", "fsspec", "pyarrow", "pydantic", "alembic")
    code = f"import sys, kitaru; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
