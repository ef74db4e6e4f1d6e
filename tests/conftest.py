"""Shared test fixtures: the reference fixtures folder and a per-session weight cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``../shared/fixtures`` (numbers from the reference implementations)."""
    if not SHARED_FIXTURES.is_dir():
        pytest.fail(f"reference fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES
