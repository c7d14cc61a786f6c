"""CRC-16/CCITT-FALSE, one byte per clock cycle.

Polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR
(``crc16(b"123456789") == 0x29B1``). The CRC is linear over GF(2): every bit
of the next value is the XOR of some bits of the current CRC and of the
byte. :func:`crc16_next` finds those sets once, in Python, by running the
bitwise reference on one-hot inputs, and emits one XOR reduction per bit:
a single level of logic, whatever the synthesis tool makes of a loop of
eight shifts.
"""

import functools

from amaranth.hdl import Cat, Value

__all__ = ["CRC_INIT", "CRC_POLY", "crc16", "crc16_step", "crc16_next"]

#: Initial value of the register.
CRC_INIT = 0xFFFF
#: Generator polynomial (x^16 + x^12 + x^5 + 1), MSB first.
CRC_POLY = 0x1021


def crc16_step(crc, byte):
    """The bitwise reference: ``crc`` after one more ``byte`` (Python ints)."""
    crc ^= (byte & 0xFF) << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
        crc &= 0xFFFF
    return crc


def crc16(data, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE of ``data`` (bytes), continuing from ``crc``."""
    for byte in data:
        crc = crc16_step(crc, byte)
    return crc


@functools.cache
def _taps():
    # Linear map: input bit k (CRC bits 0..15, then byte bits 16..23) -> output mask.
    columns = [crc16_step(1 << k, 0) for k in range(16)]
    columns += [crc16_step(0, 1 << k) for k in range(8)]
    return tuple(tuple(k for k in range(24) if columns[k] >> j & 1) for j in range(16))


def crc16_next(crc, byte):
    """The CRC register after one more byte, as a combinational expression.

    Parameters
    ----------
    crc : Value
        16-bit CRC so far.
    byte : Value
        8-bit next byte.

    Returns
    -------
    Value
        16 bits; equals :func:`crc16_step` bit for bit.
    """
    crc, byte = Value.cast(crc), Value.cast(byte)
    if len(crc) != 16 or len(byte) != 8:
        raise ValueError(f"crc16_next takes a 16-bit CRC and an 8-bit byte, not "
                         f"{len(crc)} and {len(byte)} bits")
    inputs = Cat(crc, byte)
    return Cat(*(Cat(*(inputs[k] for k in taps)).xor() for taps in _taps()))
