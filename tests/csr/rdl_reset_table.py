"""Reset values read straight from the SystemRDL text, independently of the generator.

The CSR tests compare the bank against this table, not only against
:func:`lpaccel.rtl.regmap.register_map` (which generates the bank too, so a
wrong reset value there would be wrong on both sides). It is a deliberately
small reader of exactly the constructs ``rtl/regmap/lpaccel.rdl`` uses:
``reg { field {...} NAME[msb:lsb] = value; ... } NAME @ 0xADDR;``, named
``reg`` templates with ``template NAME @ 0xADDR;`` instances, ``regwidth``,
Verilog-style, decimal and hex literals, and the ``addrmap``'s parameters.
Capability parameters are computed here from the configuration's own
fields, by hand (not through ``RegmapConfig.parameters``).
"""

import re
from pathlib import Path

from lpaccel.paths import ROOT

RDL = ROOT / "rtl" / "regmap" / "lpaccel.rdl"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_COMMENT = re.compile(r"//[^\n]*")
_PARAM = re.compile(r"longint\s+unsigned\s+(\w+)\s*=\s*(\w+)")
_REG = re.compile(r"\breg\b\s*(\w+)?\s*\{")
_FIELD = re.compile(r"field\s*\{([^{}]*)\}\s*(\w+)\s*\[(\d+):(\d+)\]\s*(?:=\s*([^;]+?))?\s*;")
_AFTER = re.compile(r"\s*(?:(\w+)\s*@\s*(0x[0-9A-Fa-f]+)\s*)?;")
_VERILOG = re.compile(r"(\d+)'([hdb])([0-9A-Fa-f_]+)\Z")


def _number(text, params):
    text = text.strip()
    match = _VERILOG.match(text)
    if match:
        base = {"h": 16, "d": 10, "b": 2}[match.group(2)]
        return int(match.group(3).replace("_", ""), base)
    if text in params:
        return params[text]
    return int(text, 0)


def _block_end(text, start):
    """Index just past the brace matching the ``{`` at ``start``."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    raise ValueError(f"{RDL.name}: unbalanced braces after offset {start}")


def _reg_body(body, params):
    """(width, reset value as software reads it, any field readable)."""
    width = 64 if re.search(r"\bregwidth\s*=\s*64\b", body) else 32
    value, readable = 0, False
    for props, _name, _msb, lsb, reset in _FIELD.findall(body):
        sw = re.search(r"\bsw\s*=\s*(\w+)", props)
        sw = sw.group(1) if sw else "rw"       # the addrmap's default
        if "r" not in sw:
            continue                            # write-only: reads as 0
        readable = True
        if "singlepulse" in props or not reset:
            # A strobe reads 0; a hardware-fed field reads its input, which
            # the testbench holds at 0 through reset; a counter starts at 0.
            continue
        value |= _number(reset, params) << int(lsb)
    return width, value, readable


def read_rdl_resets(params, path: Path = RDL):
    """Every register's address, width and reset value, from the RDL text.

    Parameters
    ----------
    params : dict
        Overrides of the ``addrmap`` parameters (name -> int); the others
        keep the defaults written in the file.

    Returns
    -------
    dict
        Register name -> ``(address, width, reset, readable)``.
    """
    text = _COMMENT.sub("", _STRING.sub('""', path.read_text()))
    values = {name: int(default, 0) for name, default in _PARAM.findall(text)}
    unknown = set(params) - set(values)
    if unknown:
        raise ValueError(f"{path.name} has no parameter(s) {sorted(unknown)}")
    values.update(params)
    templates, registers = {}, {}
    pos = text.index("{", text.index("addrmap")) + 1
    while True:
        match = _REG.search(text, pos)
        if match is None:
            break
        end = _block_end(text, match.end() - 1)
        body = text[match.end():end - 1]
        after = _AFTER.match(text, end)
        if after is None:
            raise ValueError(f"{path.name}: cannot read what follows the reg at {match.start()}")
        if match.group(1):
            templates[match.group(1)] = _reg_body(body, values)
        else:
            registers[after.group(1)] = (int(after.group(2), 16), *_reg_body(body, values))
        pos = after.end()
    for template, name, address in re.findall(r"\b(\w+)\s+(\w+)\s*@\s*(0x[0-9A-Fa-f]+)\s*;",
                                              text):
        if template in templates:
            registers[name] = (int(address, 16), *templates[template])
    return registers


def soc_parameters(soc, build_hash):
    """The capability parameters of ``soc`` (a ``SocConfig``), derived by hand."""
    kinds = {"ONCHIP": 0, "LPDDR4": 1, "LPDDR4X": 2, "LPDDR5": 3, "SDR": 4, "DDR3": 5}
    return {
        "build_hash": build_hash,
        "formats": sum(1 << int(f) for f in soc.gemv.formats),
        "lanes": soc.gemv.lanes,
        "word_bits": soc.gemv.word_bits,
        "max_rows": soc.gemv.max_rows,
        "max_cols": soc.gemv.max_cols,
        "mem_kind": kinds[soc.memory_standard],
        "mem_size": soc.memory_size,
        "dma_desc_depth": soc.dma.desc_depth,
        "dma_status_depth": soc.dma.status_depth,
        "job_depth": soc.job_depth,
    }


def reset_mismatches(table, regmap):
    """Where ``regmap`` (the generator's model) disagrees with ``table``.

    Returns
    -------
    list of str
        One message per register whose address, width or reset differs, or
        that one side lacks.
    """
    problems = []
    names = {reg.name for reg in regmap}
    for name in sorted(set(table) ^ names):
        problems.append(f"{name}: only in {'the RDL text' if name in table else 'the map'}")
    for reg in regmap:
        if reg.name not in table:
            continue
        address, width, reset, _readable = table[reg.name]
        got = (reg.address, reg.width, reg.reset)
        if got != (address, width, reset):
            problems.append(f"{reg.name}: the map has address {got[0]:#x}, width {got[1]}, "
                            f"reset {got[2]:#x}; the RDL text says {address:#x}, {width}, "
                            f"{reset:#x}")
    return problems
