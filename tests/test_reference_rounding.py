"""The reference's final rounding (tests/_reference.py ``_to_f64``): an mpf to the nearest
float64, ties to even, correctly into the subnormal range and to +-inf at the overflow
boundary.  Every other reference number goes through it, so it is checked on its own.

Each value is built from integers, ``man * 2**exp``, both as an mpf (exact: ``man`` has
fewer bits than the reference's precision and ``ldexp`` only moves the exponent) and as a
``fractions.Fraction``.  The expected floats are independent of mpmath: written out by hand
for the hard cases (each derived in its comment), and for the random cases CPython's
``int / int`` true division, which is correctly rounded (round-half-even, subnormals
included), with the overflow boundary ``2**1024 - 2**970`` applied explicitly.
"""
import math
import sys
from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

import _reference as ref

TINY = 5e-324                        # 2**-1074, the smallest subnormal
MIN_NORMAL = sys.float_info.min      # 2**-1022
DBL_MAX = sys.float_info.max         # (2**53 - 1) * 2**971
OVERFLOW_AT = 2 ** 1024 - 2 ** 970   # halfway DBL_MAX .. 2**1024: a tie, "even" is 2**1024 -> inf


def _oracle(v: Fraction) -> float:
    """Correctly rounded float64 of an exact rational, from Fraction arithmetic alone."""
    if abs(v) >= OVERFLOW_AT:
        return math.inf if v > 0 else -math.inf
    return v.numerator / v.denominator   # CPython: correctly rounded int true division


def _pair(man: int, exp: int):
    assert abs(man) < 2 ** 190   # exact in the reference's ~200-bit context
    x = ref.mp.ldexp(ref.mp.mpf(man), exp)
    f = Fraction(man) * Fraction(2) ** exp
    return x, f


# (man, exp, expected): the value is man * 2**exp
HARD = [
    # normal range, 1 = 2**52 * 2**-52: quantum 2**-52 just above 1
    (2 ** 53 + 1, -53, 1.0),                        # 1 + 2**-53: tie, 1.0 is even
    (2 ** 53 + 3, -53, 1.0 + 2 * 2.0 ** -52),        # 1 + 3*2**-53: tie between odd/even, up
    ((2 ** 53 + 1) * 2 ** 97 + 1, -150, 1.0 + 2.0 ** -52),   # a hair above the tie: up
    ((2 ** 53 + 1) * 2 ** 97 - 1, -150, 1.0),        # a hair below the tie: down
    (2 ** 54 - 1, -54, 1.0),                          # 1 - 2**-54: tie between 1 - 2**-53 and 1, 1 even
    (2 ** 55 - 1, -55, 1.0),                          # 1 - 2**-55: below 1 the quantum is 2**-53; nearest is 1
    # subnormal range (quantum 2**-1074)
    (1, -1075, 0.0),                                  # half of TINY: tie, 0 is even
    (3, -1076, TINY),                                 # 0.75 TINY: up
    (1, -1076, 0.0),                                  # 0.25 TINY: down
    (2 ** 100 + 1, -1175, TINY),                      # just above half TINY: up
    (2 ** 100 - 1, -1175, 0.0),                       # just below half TINY: down
    (3, -1075, 2 * TINY),                             # 1.5 TINY: tie, 2 is even
    (5, -1075, 2 * TINY),                             # 2.5 TINY: tie, 2 is even
    (7, -1075, 4 * TINY),                             # 3.5 TINY: tie, 4 is even
    (2 ** 53 - 1, -1075, MIN_NORMAL),                 # (2**52 - 0.5) TINY: tie, 2**52 even
    (2 ** 53 - 3, -1075, (2 ** 52 - 2) * TINY),       # (2**52 - 1.5) TINY: tie, 2**52-2 even
    # where mpmath's float() double-rounds: 53 bits first (-> exactly half TINY), then ldexp's tie -> 0
    (2 ** 60 + 1, -1135, TINY),                       # 2**-1075 (1 + 2**-60): above the tie, up
    (2 ** 52 + 1, -1126, TINY),                       # TINY (1 + 2**-52): TINY
    # overflow boundary
    (2 ** 53 - 1, 971, DBL_MAX),                      # DBL_MAX itself
    ((2 ** 53 - 1) * 2 ** 100 + 2 ** 99 - 1, 871, DBL_MAX),  # a hair below the overflow tie
    ((2 ** 53 - 1) * 2 ** 100 + 2 ** 99, 871, math.inf),      # the tie 2**1024 - 2**970: inf
    ((2 ** 53 - 1) * 2 ** 100 + 2 ** 99 + 1, 871, math.inf),  # above it
    (1, 1024, math.inf),                              # 2**1024
    (1, 5000, math.inf),
    (1, 1023, 2.0 ** 1023),
    (1, -5000, 0.0),
]


@pytest.mark.parametrize("man,exp,expected", HARD)
@pytest.mark.parametrize("sign", [1, -1])
def test_hard_cases(man, exp, expected, sign):
    x, f = _pair(sign * man, exp)
    want = math.copysign(expected, sign) if expected else 0.0
    got = ref._to_f64(x)
    assert type(got) is float
    assert got == want, (man, exp, got, want)
    assert _oracle(f) == want    # the independent oracle agrees with the hand-derived value


def test_specials():
    assert ref._to_f64(ref.mp.mpf(0)) == 0.0
    assert math.isnan(ref._to_f64(ref.mp.nan))
    assert ref._to_f64(ref.mp.inf) == math.inf
    assert ref._to_f64(ref.mp.ninf) == -math.inf
    assert ref._to_f64(ref.mp.mpf(0.1)) == 0.1          # exact float64 values come back unchanged
    assert ref._to_f64(ref.mp.mpf(-TINY)) == -TINY
    # exponents far outside any float's (exp(-1e30) is what a scale-1e30 softmax row holds)
    huge = ref.mp.mpf(10) ** 30
    for v, want in ((ref.mp.exp(-huge), 0.0), (-ref.mp.exp(-huge), -0.0),
                    (ref.mp.exp(huge), math.inf), (-ref.mp.exp(huge), -math.inf)):
        got = ref._to_f64(v)
        assert got == want and math.copysign(1, got) == math.copysign(1, want)


@given(man=st.integers(1, 2 ** 189), exp=st.integers(-1400, 1100), neg=st.booleans())
def test_random_against_fraction_oracle(man, exp, neg):
    x, f = _pair(-man if neg else man, exp)
    got = ref._to_f64(x)
    want = _oracle(f)
    assert got == want and math.copysign(1, got) == math.copysign(1, want), (man, exp, got, want)


@given(man=st.integers(1, 2 ** 189), exp=st.integers(-1000, 800), neg=st.booleans())
def test_normal_range_matches_mpmath_float(man, exp, neg):
    """In the normal range float(mpf) is a single round-to-nearest-even to 53 bits: the
    same answer."""
    x, f = _pair(-man if neg else man, exp)
    if not MIN_NORMAL <= abs(f) <= DBL_MAX:
        return
    assert ref._to_f64(x) == float(x)
