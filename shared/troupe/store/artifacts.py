"""Model artifacts in skops format, and the types an artifact may bring back.

An artifact store is not a trusted code source: whoever can write to it could plant an
object that runs code when loaded. So artifacts are never pickled. skops records the type
of every object; before loading, each type skops does not already trust must be a class
(not a function) from scikit-learn, NumPy or SciPy, or one of a few plain containers.
Anything else is refused by name.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from .errors import IntegrityError

TRUSTED_PREFIXES: Final = ("sklearn.", "numpy.", "scipy.")
TRUSTED_TYPES: Final = frozenset(
    {
        "builtins.slice",
        "builtins.complex",
        "builtins.bytes",
        "builtins.bytearray",
        "builtins.frozenset",
        "collections.OrderedDict",
        "collections.Counter",
        "collections.deque",
    }
)


def dump_model(model: Any) -> bytes:
    import skops.io

    data: bytes = skops.io.dumps(model)
    return data


def load_trusted_model(data: bytes, *, origin: str) -> Any:
    """The model in `data`, once every type it names is trusted; IntegrityError otherwise."""
    import skops.io

    try:
        untrusted: list[str] = skops.io.get_untrusted_types(data=data)
    except Exception as error:
        raise IntegrityError(
            f"{origin} is not a readable skops artifact ({type(error).__name__}: {error}); "
            "save models with Store.save_model"
        ) from error
    refused = sorted(name for name in untrusted if not is_trusted_type(name))
    if refused:
        raise IntegrityError(
            f"{origin} holds types troupe does not trust: {', '.join(refused)}; only classes "
            "from scikit-learn, NumPy and SciPy are loaded. Retrain the model without "
            "custom code (for example no FunctionTransformer around your own function)"
        )
    try:
        return skops.io.loads(data, trusted=untrusted)
    except Exception as error:
        raise IntegrityError(
            f"{origin} could not be loaded ({type(error).__name__}: {error})"
        ) from error


def is_trusted_type(name: str) -> bool:
    if name in TRUSTED_TYPES:
        return True
    if not name.startswith(TRUSTED_PREFIXES):
        return False
    # A trusted package's functions can still do harm when a FunctionTransformer calls
    # them on data (numpy.load, say), so only its classes are trusted.
    return isinstance(_lookup(name), type)


def _lookup(name: str) -> object | None:
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:split]))
        except Exception:  # not a module (or one that fails to import): try shorter
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute, None)
            if found is None:
                return None
        return found
    return None
