"""The one error hierarchy of kgpeft.

Every error kgpeft raises on purpose derives from :class:`KGPeftError`. The specific
classes also derive from the built-in exception a caller would naturally catch
(``ValueError``, ``FileNotFoundError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from os import PathLike


class KGPeftError(Exception):
    """Base class of all kgpeft errors."""


class KGFormatError(KGPeftError, ValueError):
    """A KG file (or a saved KG folder) is malformed.

    The message names the file and, where there is one, the 1-based line number.
    """

    def __init__(self, message: str, path: str | PathLike | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class KGFileNotFoundError(KGPeftError, FileNotFoundError):
    """A KG file, folder or system database is missing."""


class UnknownDatasetError(KGPeftError, ValueError):
    """``kgpeft.datasets.load`` was asked for a dataset it does not know."""


class PathNameError(KGPeftError, ValueError):
    """A name that kgpeft turns into a file or folder name (an adapter's, a variant's) could leave
    its folder or cannot be a file name. The message names the argument or key and the value."""


class OutputPathError(KGPeftError, OSError):
    """An output path cannot be used: it cannot be written, it holds files kgpeft did not write,
    or another run is writing to it. The message names the path."""


class LinkerFileError(KGPeftError, ValueError):
    """A saved :class:`~kgpeft.linking.EntityLinker` folder cannot be used: a file is missing,
    malformed or changed since it was written, it was written by a newer kgpeft, or it was
    built for another KG or with other settings. The message names the file."""

    def __init__(self, message: str, path: str | PathLike):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")
