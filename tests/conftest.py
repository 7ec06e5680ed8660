"""Shared test configuration. Imports nothing from the vision stack: tests/api runs without it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_images"


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES
