"""Model artifacts in skops format, and the types an artifact may bring back.

An artifact store is not a trusted code source: whoever can write to it could plant an
object that runs code when loaded. So artifacts are never pickled. skops records the type
of every object by a dotted name; before loading, each type skops does not already trust
must be one of a few plain containers, or a class that really belongs to scikit-learn,
NumPy or SciPy. The dotted name alone proves nothing: `numpy.f2py.rules.Path` is pathlib's
Path, reached through a module that imports it. So the name is resolved to the class it
loads, and the class's own `__module__`, and that of each of its bases, must lie in those
packages and outside a deny list of the parts that touch raw memory, files or processes.
Anything else is refused by name.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator
from typing import Any, Final

from .errors import IntegrityError

TRUSTED_PACKAGES: Final = frozenset({"sklearn", "numpy", "scipy"})
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
# Modules a trusted class's bases may also come from: the interpreter's own types and
# abstract markers, which bring no behaviour of their own.
NEUTRAL_BASE_MODULES: Final = frozenset(
    {"builtins", "abc", "_abc", "collections.abc", "_collections_abc", "typing"}
)
# Parts of the trusted packages that map memory or files, call raw pointers, compile code,
# or start processes. Checked on the dotted name before anything is imported, and on the
# module of the class it resolves to.
DENIED_MODULES: Final = (
    "numpy.ctypeslib",  # ctypes types and raw pointers into memory
    "numpy.f2py",  # runs compilers; re-exports pathlib and os helpers
    "numpy.distutils",  # runs compilers and shell commands
    "numpy.testing",  # builds and imports C extensions, runs subprocesses
    "numpy.lib.npyio",  # NpzFile, DataSource: open files and URLs
    "numpy.lib._npyio_impl",
    "numpy.lib._datasource",
    "numpy.lib.format",  # opens memory-mapped .npy files
    "scipy.io",  # file readers and writers
    "scipy._lib._ccallback",  # LowLevelCallable: calls a raw function pointer
    "sklearn.datasets",  # downloads and reads files
    "sklearn.utils._testing",  # temporary memory-mapped files
    "sklearn.utils.parallel",  # worker processes (joblib)
)
# Classes refused with everything derived from them, wherever they are defined:
# memory-mapped arrays write through to a file, and file objects and paths are files.
DENIED_BASES: Final = ("numpy.memmap", "io.IOBase", "os.PathLike")


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
            "defined in scikit-learn, NumPy and SciPy are loaded, and none that map memory "
            "or files or start processes. Retrain the model without custom code (for "
            "example no FunctionTransformer around your own function)"
        )
    try:
        return skops.io.loads(data, trusted=untrusted)
    except Exception as error:
        raise IntegrityError(
            f"{origin} could not be loaded ({type(error).__name__}: {error})"
        ) from error


def is_trusted_type(name: str) -> bool:
    """Whether the type an artifact names may be loaded: see the module's docstring."""
    if name in TRUSTED_TYPES:
        return True
    if name.split(".", 1)[0] not in TRUSTED_PACKAGES or _is_denied_module(name):
        return False  # refused before importing anything it names
    # A dotted name can split into module and attributes in more than one way; each way
    # that resolves must be a trusted class, since the loader may take any of them.
    found = list(_resolutions(name))
    return bool(found) and all(_is_trusted_class(obj) for obj in found)


def _is_trusted_class(obj: object) -> bool:
    # A trusted package's functions can still do harm when a FunctionTransformer calls
    # them on data (numpy.load, say), so only its classes are trusted.
    if not isinstance(obj, type) or issubclass(obj, _denied_bases()):
        return False
    if not _is_trusted_module(obj.__module__):
        return False
    return all(_is_trusted_module(base.__module__) or base.__module__ in NEUTRAL_BASE_MODULES
               for base in obj.__mro__[1:])


def _is_trusted_module(module: str) -> bool:
    return module.split(".", 1)[0] in TRUSTED_PACKAGES and not _is_denied_module(module)


def _is_denied_module(dotted: str) -> bool:
    return any(dotted == denied or dotted.startswith(denied + ".") for denied in DENIED_MODULES)


@functools.cache
def _denied_bases() -> tuple[type, ...]:
    classes = []
    for dotted in DENIED_BASES:
        module, _, attribute = dotted.rpartition(".")
        classes.append(getattr(importlib.import_module(module), attribute))
    return tuple(classes)


def _resolutions(name: str) -> Iterator[object]:
    """Every object `name` reaches as an importable module followed by attributes."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:split]))
        except Exception:  # not a module (or one that fails to import): try shorter
            continue
        for attribute in parts[split:]:
            found = getattr(found, attribute, None)
            if found is None:
                break
        else:
            yield found
