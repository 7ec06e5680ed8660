from __future__ import annotations

from collections.abc import Iterator

import pytest

import preflight


@pytest.fixture(scope="session")
def gate() -> Iterator[preflight.Gate]:
    with preflight.Gate() as g:
        yield g


@pytest.fixture(scope="session")
def file_gate() -> Iterator[preflight.Gate]:
    """A gate with only the file rules: for tests about files, not faces."""
    import dataclasses

    policy = dataclasses.replace(preflight.Policy(), check_face=False, check_sharpness=False,
                                 check_exposure=False)
    with preflight.Gate(policy) as g:
        yield g
