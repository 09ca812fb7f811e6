"""Fixtures shared by the cross-service tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
_LAUNCHER_MODULE = "sepsis_stack_launcher"


def load_launcher() -> ModuleType:
    """`scripts/stack.py`, the run command's launcher, loaded once as a module."""
    module = sys.modules.get(_LAUNCHER_MODULE)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(_LAUNCHER_MODULE, ROOT / "scripts" / "stack.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: its dataclasses look their module up by name.
    sys.modules[_LAUNCHER_MODULE] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def stack_launcher() -> ModuleType:
    """The launcher that `scripts/run` uses (scripts/ is not a package, so it is loaded by path)."""
    return load_launcher()
