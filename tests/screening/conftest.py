from __future__ import annotations

from pathlib import Path

import pytest

from preflight.report import Report
from preflight.screening import Screening, find_images, screen

from ._dataset import make_dataset


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> Path:
    """The generated folder of 200+ images (mixed pass, fail and corrupt)."""
    return make_dataset(tmp_path_factory.mktemp("screening") / "dataset", samples)


@pytest.fixture(scope="session")
def dataset_paths(dataset: Path) -> list[str]:
    return find_images(dataset)


@pytest.fixture(scope="session")
def local_run(dataset_paths: list[str]) -> tuple[list[Report], Screening]:
    """The dataset screened once with 2 worker processes (shared by several tests)."""
    with screen(dataset_paths, workers=2, progress=False) as run:
        reports = list(run)
    return reports, run
