"""Every error has one root, carries its fields, and survives pickling (Ray pickles exceptions)."""

import inspect
import pickle

import cloudpickle
import pytest

from kitaru import errors

ALL_ERRORS = [cls for _, cls in inspect.getmembers(errors, inspect.isclass) if issubclass(cls, errors.KitaruError)]


def test_hierarchy_matches_the_spec():
    assert issubclass(errors.KitaruWaitValidationError, errors.KitaruUsageError)
    for cls in (
        errors.KitaruTimeoutError,
        errors.KitaruCancelledError,
        errors.KitaruConflictError,
        errors.KitaruWaitAbortedError,
        errors.KitaruNotFoundError,
    ):
        assert issubclass(cls, errors.KitaruStateError)
    assert issubclass(errors.KitaruUserCodeError, errors.KitaruExecutionError)
    assert issubclass(errors.KitaruDivergenceError, errors.KitaruExecutionError)
    assert issubclass(errors.KitaruExecutionError, errors.KitaruRuntimeError)
    assert issubclass(errors.KitaruBackendError, errors.KitaruRuntimeError)
    assert len(ALL_ERRORS) == 16


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_errors_round_trip_with_their_fields(cls, dumps):
    original = cls("it broke; do this next", exec_id="e-1", invocation_id="step_2", origin=errors.FailureOrigin.RUNTIME)
    copy = pickle.loads(dumps(original))
    assert type(copy) is cls
    assert str(copy) == "it broke; do this next"
    assert (copy.exec_id, copy.invocation_id, copy.origin) == ("e-1", "step_2", errors.FailureOrigin.RUNTIME)
