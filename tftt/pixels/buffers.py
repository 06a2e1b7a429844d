"""Large ``bytes`` values for Pixel Data, written by numpy in one pass.

pydicom 3 stores Pixel Data as ``bytes`` (a ``bytearray`` value is taken for a list of numbers),
so an edited image is normally built as a numpy array and then copied by ``ndarray.tobytes()``:
two passes over the output and two buffers of its size. :func:`filled_bytes` lets numpy write
straight into a new ``bytes`` object before anyone else can see it, which is what
``tobytes()`` itself does in C. On Linux the kernel is also advised to back the new memory
with huge pages before it is touched (numpy does the same for its own large arrays), so the
one writing pass also maps the memory cheaply.

Pure: no I/O. Measured with ``benchmarks/pixels.py``.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

#: Below this size the plain ``np.empty`` + ``tobytes()`` route costs too little to matter.
#: At or above it glibc serves ``malloc`` from a fresh anonymous mapping (its largest mmap
#: threshold is 32 MiB), whose pages the kernel hands out zeroed.
_LARGE = 32 * 1024 * 1024
_HUGE_PAGE = 2 * 1024 * 1024
_MADV_HUGEPAGE = 14


def _c_helpers() -> tuple[Any, Any, Any] | None:
    if sys.implementation.name != "cpython" or not sys.platform.startswith("linux"):
        return None
    try:
        new = ctypes.pythonapi.PyBytes_FromStringAndSize
        new.restype = ctypes.py_object
        new.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
        address_of = ctypes.pythonapi.PyBytes_AsString
        address_of.restype = ctypes.c_void_p
        address_of.argtypes = (ctypes.py_object,)
        madvise = ctypes.CDLL(None, use_errno=True).madvise
        madvise.restype = ctypes.c_int
        madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    except (AttributeError, OSError):
        return None
    return new, address_of, madvise


_HELPERS = _c_helpers()


class NewBytes:
    """A ``bytes`` object of ``size`` bytes under construction, written through :attr:`view`.

    :attr:`view` is a writeable one-dimensional ``uint8`` array over the new object's memory.
    The writer MUST write every byte, keep no other reference to :attr:`view`, and then call
    :meth:`done`, which drops the view and hands out the object, never written again. Until
    then nothing else can reach it; dropping the builder drops the object.
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("a buffer size cannot be negative")
        self._data: bytes | None = None
        self._array: np.ndarray | None = None
        if size < _LARGE or _HELPERS is None:
            # Zeroed (calloc: free for fresh mappings), so a writer bug can never publish old
            # heap contents, e.g. another patient's pixels.
            self._array = np.zeros(size, dtype=np.uint8)
            self.view: np.ndarray = self._array
            return
        new, address_of, madvise = _HELPERS
        data: bytes = new(None, size)  # not initialised: the writer writes all of it
        address: int = address_of(data)
        start = -(-address // _HUGE_PAGE) * _HUGE_PAGE
        stop = (address + size) // _HUGE_PAGE * _HUGE_PAGE
        if stop > start:
            madvise(start, stop - start, _MADV_HUGEPAGE)  # advice only: a refusal changes nothing
        self._data = data
        memory = (ctypes.c_ubyte * size).from_address(address)
        memory.owner = data  # type: ignore[attr-defined]  # a late view keeps it alive
        self.view = np.ctypeslib.as_array(memory)

    def done(self) -> bytes:
        """The finished ``bytes`` object (call once, after writing every byte).

        Raises:
            RuntimeError: called twice.
        """
        if not hasattr(self, "view"):
            raise RuntimeError("these bytes were already handed out")
        del self.view
        if self._array is not None:
            array, self._array = self._array, None
            return array.tobytes()
        data, self._data = self._data, None
        assert data is not None
        return data


def filled_bytes(size: int, fill: Callable[[np.ndarray], None]) -> bytes:
    """A new ``bytes`` object of ``size`` bytes whose content ``fill`` writes.

    ``fill`` receives :attr:`NewBytes.view`; it MUST write every byte and MUST NOT keep the
    array. If ``fill`` raises, the object is dropped.

    Raises:
        ValueError: ``size`` is negative.
        Exception: whatever ``fill`` raises.
    """
    builder = NewBytes(size)
    fill(builder.view)
    return builder.done()
