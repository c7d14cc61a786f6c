"""Host-side register layer and the ``lpaccel regmap`` generators.

The register layer is built at run time from the elaborated SystemRDL model
(:func:`lpaccel.rtl.regmap.register_map`), so it can never disagree with the
CSR bank: names, addresses, access kinds and reset values come from the same
place. It talks to the hardware through any object with
``read32(addr) -> int`` and ``write32(addr, value)`` (a :class:`Transport`):
the simulation transport and a board's serial bridge both qualify, so the
same driver code runs on both.

:func:`generate` writes, for firmware and documentation:

* ``lpaccel_regs.h`` — C header (``peakrdl-cheader``): ``lpaccel_t`` register
  struct, ``LPACCEL__<REG>__<FIELD>_bm/_bp/_bw/_reset`` macros; plus its
  self-check ``lpaccel_regs.h.test.c``,
* ``regmap.md`` — Markdown register reference (``peakrdl-markdown``) with
  the RDL's enums (error and kind codes) appended,
* ``html/`` — browsable HTML reference (``peakrdl-html``),
* ``lpaccel_regs.py`` — the register table as a Python module that builds a
  :class:`Registers` without ``systemrdl-compiler``.
"""

import abc
import json
from pathlib import Path

from lpaccel.rtl.regmap import (
    BUS_WIDTH,
    Field,
    Register,
    RegisterMap,
    RegmapConfig,
    compile_regmap,
    register_map,
)

__all__ = [
    "MemoryTransport",
    "RegisterError",
    "Registers",
    "Transport",
    "generate",
    "regmap_from_dict",
    "regmap_to_dict",
]


class RegisterError(Exception):
    """A register access was refused (unknown name, read of write-only, ...)."""


class Transport(abc.ABC):
    """32-bit register access to the CSR port, whatever carries it."""

    @abc.abstractmethod
    def read32(self, addr):
        """Return the 32-bit word at byte address ``addr``."""

    @abc.abstractmethod
    def write32(self, addr, value):
        """Write the 32-bit ``value`` at byte address ``addr``."""


class MemoryTransport(Transport):
    """A plain dictionary of words: for host-side tests without hardware.

    It knows nothing about access kinds; it records every access in
    :attr:`log` as ``("r"|"w", addr, value)``.
    """

    def __init__(self):
        self.words = {}
        self.log = []

    def read32(self, addr):
        value = self.words.get(addr, 0)
        self.log.append(("r", addr, value))
        return value

    def write32(self, addr, value):
        self.words[addr] = value & 0xFFFF_FFFF
        self.log.append(("w", addr, value & 0xFFFF_FFFF))


def _mask(width):
    return (1 << width) - 1


class Registers:
    """Read and write lpaccel registers by name.

    64-bit registers are accessed low word first, then high word, which the
    CSR bank makes atomic (docs/regmap.md).

    Parameters
    ----------
    transport : Transport
        Anything with ``read32``/``write32``.
    regmap : RegisterMap, optional
        Default ``register_map()`` (the default configuration).

    Examples
    --------
    >>> regs = Registers(transport)
    >>> regs.write("JOB_ROWS", 64)
    >>> regs.read_field("STATUS.BUSY")
    """

    def __init__(self, transport, regmap=None):
        self.transport = transport
        self.map = regmap if regmap is not None else register_map()

    def _reg(self, name):
        try:
            return self.map[name]
        except KeyError as error:
            raise RegisterError(error.args[0]) from None

    def address(self, name):
        """Byte address of register ``name``."""
        return self._reg(name).address

    def read(self, name):
        """Read a whole register (32 or 64 bits).

        Raises
        ------
        RegisterError
            If the register has no readable field.
        """
        reg = self._reg(name)
        if not reg.sw_readable:
            raise RegisterError(f"register {reg.name} is write-only ({reg.access}); "
                                f"it cannot be read")
        value = 0
        for word in range(reg.words):
            value |= (self.transport.read32(reg.address + 4 * word) & 0xFFFF_FFFF) \
                << (BUS_WIDTH * word)
        return value

    def write(self, name, value):
        """Write a whole register (32 or 64 bits), low word first.

        Raises
        ------
        RegisterError
            If the register has no writable field or ``value`` does not fit.
        """
        reg = self._reg(name)
        if not reg.sw_writable:
            raise RegisterError(f"register {reg.name} is read-only; it cannot be written")
        if not isinstance(value, int) or not 0 <= value <= _mask(reg.width):
            raise RegisterError(f"register {reg.name}: value {value!r} does not fit "
                                f"{reg.width} bits")
        for word in range(reg.words):
            self.transport.write32(reg.address + 4 * word,
                                   (value >> (BUS_WIDTH * word)) & 0xFFFF_FFFF)

    def _field(self, path):
        reg_name, _, field_name = path.partition(".")
        reg = self._reg(reg_name)
        try:
            return reg, reg.field(field_name)
        except KeyError as error:
            raise RegisterError(error.args[0]) from None

    def read_field(self, path):
        """Read one field, ``"REGISTER.FIELD"``."""
        reg, field = self._field(path)
        return (self.read(reg.name) >> field.lsb) & _mask(field.width)

    def write_field(self, path, value):
        """Write one field, ``"REGISTER.FIELD"``, leaving the others unchanged.

        RW neighbours are read back and rewritten; W1C, W1S and WO neighbours
        get zeros (a zero write leaves them alone), so writing one W1C bit
        clears only that bit.
        """
        reg, field = self._field(path)
        if not field.sw_writable:
            raise RegisterError(f"field {reg.name}.{field.name} is read-only")
        if not isinstance(value, int) or not 0 <= value <= _mask(field.width):
            raise RegisterError(f"field {reg.name}.{field.name}: value {value!r} does not "
                                f"fit {field.width} bits")
        keep = reg.sw_write_mask() & ~field.mask
        base = self.read(reg.name) & keep if keep and reg.sw_readable else 0
        self.write(reg.name, base | (value << field.lsb))

    def fields(self, name):
        """Read a register and split it into ``{field: value}``."""
        reg = self._reg(name)
        value = self.read(reg.name)
        return {f.name: (value >> f.lsb) & _mask(f.width) for f in reg.fields}

    def __repr__(self):
        return f"Registers({self.transport!r}, {len(self.map)} registers)"


# --- generated artifacts -----------------------------------------------------

def regmap_to_dict(regmap):
    """The register map as plain JSON-able data (used by ``lpaccel_regs.py``)."""
    return {
        "config": regmap.config.parameters(),
        "registers": [{
            "name": r.name, "address": r.address, "width": r.width, "desc": r.desc,
            "fields": [{k: getattr(f, k) for k in Field.__dataclass_fields__} for f in r.fields],
        } for r in regmap],
    }


def regmap_from_dict(table):
    """Rebuild a :class:`RegisterMap` from :func:`regmap_to_dict` data."""
    registers = tuple(
        Register(name=r["name"], address=r["address"], width=r["width"], desc=r["desc"],
                 fields=tuple(Field(**f) for f in r["fields"]))
        for r in table["registers"])
    return RegisterMap(registers=registers, config=None)


_PY_TEMPLATE = '''"""lpaccel register table from rtl/regmap/lpaccel.rdl (made by `lpaccel regmap`).

Do not edit: regenerate. ``registers(transport)`` returns a
``lpaccel.regmap.Registers`` for this exact map.
"""

import json

TABLE = json.loads({table!r})

#: Register name -> byte address.
ADDRESSES = {{r["name"]: r["address"] for r in TABLE["registers"]}}


def registers(transport):
    """A ``lpaccel.regmap.Registers`` over ``transport`` for this map."""
    from lpaccel.regmap import Registers, regmap_from_dict
    return Registers(transport, regmap_from_dict(TABLE))
'''


def _enums_markdown(root):
    """The RDL's ``encode`` enums as Markdown tables (peakrdl-markdown lists none)."""
    enums = {}
    for reg in root.top.registers():
        for field in reg.fields():
            encode = field.get_property("encode")
            if encode is not None:
                enums.setdefault(encode.type_name, (encode, []))[1].append(
                    f"{reg.inst_name}.{field.inst_name}")
    lines = ["", "## Enumerations", ""]
    for name, (encode, users) in sorted(enums.items()):
        lines += [f"### {name}", "", f"Encodes {', '.join(users)}.", "",
                  "| value | name | meaning |", "|---:|---|---|"]
        lines += [f"| {m.value} | {m.name} | {(m.rdl_desc or '').strip()} |" for m in encode]
        lines.append("")
    return "\n".join(lines)


def generate(out_dir, config=None):
    """Write the C header, Markdown and HTML docs and the Python table to ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing (use a directory under ``build/``; nothing
        generated is committed).
    config : RegmapConfig, optional
        Capability values; default ``RegmapConfig()``.

    Returns
    -------
    dict
        Artifact name (``"c_header"``, ``"c_test"``, ``"markdown"``, ``"html"``,
        ``"python"``) → path.
    """
    from peakrdl_cheader.c_standards import CStandard
    from peakrdl_cheader.exporter import CHeaderExporter
    from peakrdl_html import HTMLExporter
    from peakrdl_markdown import MarkdownExporter

    config = config if config is not None else RegmapConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = compile_regmap(config)
    paths = {
        "c_header": out / "lpaccel_regs.h",
        "markdown": out / "regmap.md",
        "html": out / "html",
        "python": out / "lpaccel_regs.py",
    }
    # Hierarchical type names: the macros stay LPACCEL__<REG>__<FIELD>_* whatever
    # the parameters (reused typedefs would be named after the parameter values).
    # std=gnu99: the firmware is C99 and cross-compiles freestanding, where there
    # is no <assert.h> for the C11 static_assert the default (gnu17) emits.
    CHeaderExporter().export(root, str(paths["c_header"]), reuse_typedefs=False,
                             testcase=True, std=CStandard.gnu99)
    paths["c_test"] = out / "lpaccel_regs.h.test.c"
    MarkdownExporter().export(root.top, str(paths["markdown"]))
    with open(paths["markdown"], "a") as markdown:
        markdown.write(_enums_markdown(root))
    HTMLExporter().export(root.top, str(paths["html"]))
    table = json.dumps(regmap_to_dict(register_map(config)), sort_keys=True)
    paths["python"].write_text(_PY_TEMPLATE.format(table=table))
    return {name: str(path) for name, path in paths.items()}
