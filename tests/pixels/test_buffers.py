import numpy as np
import pytest

from tftt.pixels.buffers import NewBytes, filled_bytes

LARGE = 33 * 1024 * 1024  # above the size where the bytes object is written in place


@pytest.mark.parametrize("size", [0, 7, LARGE], ids=["empty", "small", "large"])
def test_filled_bytes_are_real_bytes_with_what_was_written(size):
    pattern = np.arange(size, dtype=np.uint64).astype(np.uint8)

    def fill(view: np.ndarray) -> None:
        assert view.dtype == np.uint8 and view.shape == (size,) and view.flags.writeable
        view[:] = pattern

    data = filled_bytes(size, fill)
    assert type(data) is bytes and len(data) == size
    assert data == pattern.tobytes()


def test_a_failing_fill_raises_and_hands_nothing_out():
    def fill(view: np.ndarray) -> None:
        view[:10] = 1
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        filled_bytes(LARGE, fill)


def test_new_bytes_are_handed_out_once_and_a_stray_view_keeps_them_alive():
    builder = NewBytes(LARGE)
    stray = builder.view[-4:]
    builder.view[:] = 5
    data = builder.done()
    with pytest.raises(RuntimeError, match="already handed out"):
        builder.done()
    del data  # the stray view still points at live memory
    assert stray.tolist() == [5, 5, 5, 5]


def test_a_negative_size_is_refused():
    with pytest.raises(ValueError, match="negative"):
        NewBytes(-1)
