"""A package's public names, imported from their modules on first use (PEP 562), so that importing a package costs
nothing until a name is used: `from core.scoring import Predictor` loads onnxruntime and never TensorFlow, `from
core.training import train` loads TensorFlow only then.

A name is never also the name of one of the package's modules: Python sets a package's attribute to a module when the
module is first imported, which would then hide the name (tests/test_repository.py checks it).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def public_names(package: str, modules: dict[str, tuple[str, ...]]) -> tuple[list[str], Callable, Callable]:
    """__all__, __getattr__ and __dir__ for package, from {module: names it offers}."""
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str):
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # found once: the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(home) | set(vars(sys.modules[package])))

    return sorted(home), __getattr__, __dir__
