"""A user's verifier, named so another process can use it: the night runs in the daemon, far
from the app whose verifier judged the episode, and gates the new skill with that same
verifier. A verifier is recorded by import path (`package.module:function`); lambdas and
nested functions have none, so episodes they judged are gated on `expected` answers only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def verifier_path(verifier: Callable) -> str | None:
    """`module:qualname` when `verifier` can be imported back by that name, else None."""
    module = getattr(verifier, "__module__", None)
    name = getattr(verifier, "__qualname__", "")
    if not module or module == "__main__" or not name or "<" in name:
        return None
    try:
        return f"{module}:{name}" if resolve_verifier(f"{module}:{name}") is verifier else None
    except (ImportError, AttributeError):
        return None


def resolve_verifier(path: str) -> Callable:
    """The function `path` names; ImportError / AttributeError when it is gone."""
    module, _, name = path.partition(":")
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise AttributeError(f"{path} is not callable")
    return target
