"""float32 values as AMCT writes them: the shortest decimal that reads back as the same float32.

AMCT's calibration config writes a float32 proto field `v` as `float(str(numpy.float32(v)))` (SPEC 10.4): the
shortest decimal string that round-trips the float32 (`0.3` for the float32 nearest 0.3, `20.0` for 20), read
back as a double. This module computes the same without numpy: for 1, 2, ... 9 significant digits, the two
decimals of that length around the exact float32 value; the first length where one of them reads back as the
same float32 wins, the nearer one if both do, the even one on a tie (as numpy's Dragon4 "unique" mode chooses).
"""

from __future__ import annotations

import math
import struct
from decimal import ROUND_FLOOR, Decimal


def to_float32(value: float) -> float:
    """The float32 nearest `value`, as a Python float (raises OverflowError beyond the float32 range)."""
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def shortest_float32(value: float) -> str:
    """The shortest decimal text that reads back as the float32 of `value`, in Python's notation (`0.3`,
    `20.0`, `1e-05`: what `str(numpy.float32(v))` gives, for the values a config holds)."""
    single = to_float32(value)
    if not math.isfinite(single) or single == 0:
        return repr(single)
    packed = struct.pack("<f", single)
    exact = Decimal(single)  # a float32 is exactly representable as a decimal
    for digits in range(1, 10):
        step = Decimal(1).scaleb(exact.adjusted() - digits + 1)
        low = exact.quantize(step, rounding=ROUND_FLOOR)
        fits = [c for c in (low, low + step) if _reads_back(c, packed)]
        if fits:
            # the nearer; on a tie the even last digit, as numpy rounds half to even
            return repr(float(min(fits, key=lambda c: (abs(c - exact), c.as_tuple().digits[-1] % 2))))
    return repr(single)  # not reached: 9 significant digits always identify a float32


def _reads_back(candidate: Decimal, packed: bytes) -> bool:
    try:
        return struct.pack("<f", float(candidate)) == packed
    except OverflowError:  # past the largest float32
        return False


def amct_float(value: float) -> float:
    """`float(str(numpy.float32(value)))`: the float AMCT's calibration config writes for a float32 field."""
    return float(shortest_float32(value))
