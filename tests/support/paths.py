"""The project's folder as the tests see it (independently of the code under test)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
