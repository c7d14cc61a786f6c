"""The lpaccel register map: one SystemRDL file, elaborated into plain Python.

``lpaccel.rdl`` next to this module is the only place register names,
addresses, fields, access rules and reset values are written. This module
compiles it with ``systemrdl-compiler``, overriding the capability parameters
from a :class:`RegmapConfig`, and flattens the elaborated model into
:class:`RegisterMap` / :class:`Register` / :class:`Field` objects that the CSR
bank generator (:mod:`lpaccel.rtl.csr`), the Python register layer
(:mod:`lpaccel.regmap`) and the tests share.

Access kinds (``Field.access``) are derived from the SystemRDL properties:

======  ==============================  ==========================================
kind    SystemRDL                       software view
======  ==============================  ==========================================
RO      ``sw=r``                        read only; writes to an all-RO register fail
RW      ``sw=rw``                       read/write storage
W1C     ``sw=rw; onwrite=woclr``        writing 1 clears the bit
W1S     ``sw=rw; onwrite=woset``        writing 1 sets the bit (``singlepulse``:
                                        a one-cycle strobe that reads as 0)
WO      ``sw=w``                        write only; reads of an all-WO register fail
======  ==============================  ==========================================
"""

import functools
import types
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Shape
from amaranth.lib import enum

from ..config import WeightFormat
from ..utils import check_int

__all__ = [
    "RDL_PATH",
    "DmaError",
    "Field",
    "GemvError",
    "MemoryKind",
    "Register",
    "RegisterMap",
    "RegmapConfig",
    "compile_regmap",
    "rdl_enum",
    "register_map",
]

#: The SystemRDL source (shipped as package data next to this module).
RDL_PATH = Path(__file__).resolve().parent / "lpaccel.rdl"

#: Name of the top ``addrmap`` in :data:`RDL_PATH`.
TOP = "lpaccel"

#: Data bus width of the CSR port in bits; every register is a multiple of it.
BUS_WIDTH = 32


def _compile_file(path, parameters):
    from systemrdl import RDLCompiler
    rdlc = RDLCompiler()
    rdlc.compile_file(str(path))
    return rdlc.elaborate(TOP, TOP, parameters=dict(parameters))


# -- enumerations -----------------------------------------------------------------

def _member_desc(self):
    """The member's ``desc`` text from the SystemRDL file."""
    return type(self)._rdl_descs[self.name]


def _describe(cls, code):
    """Text for ``code`` (a member or an integer), for messages and docs.

    Returns
    -------
    str
        ``"NAME (value): desc"``, or for a value with no member
        ``"reserved <rdl_type> code <value>"``.
    """
    try:
        member = cls(int(code))
    except ValueError:
        return f"reserved {cls.rdl_type} code {int(code)}"
    return f"{member.name} ({member.value}): {member.desc}"


def _enum_class_name(type_name):
    base = type_name[:-2] if type_name.endswith("_e") else type_name
    return "".join(part.capitalize() for part in base.split("_"))


@functools.lru_cache(maxsize=8)
def _rdl_enum_types(path):
    """Every ``enum`` type used as a field's ``encode`` in ``path``: name → members."""
    root = _compile_file(path, ())
    found = {}
    for node in root.top.descendants():
        if not hasattr(node, "fields"):
            continue
        for f in node.fields():
            encode = f.get_property("encode")
            if encode is not None:
                found[encode.type_name] = tuple(
                    (m.name, m.value, (m.rdl_desc or "").strip()) for m in encode)
    return found


def rdl_enum(type_name, shape, *, name=None, path=None):
    """An ``amaranth.lib.enum.IntEnum`` built from a SystemRDL ``enum`` type.

    Member names and values come from the compiled SystemRDL file. Members
    are integers (usable in arithmetic, ``Const`` and comparisons) and the
    class is a shape, so ``Signal(GemvError)`` or a struct field of that type
    has the given width. Each member's SystemRDL ``desc`` travels with it:

    - ``member.desc``: the text;
    - ``cls.describe(code)``: ``"NAME (value): text"`` for a member or an
      integer, ``"reserved <type> code <value>"`` for a value with no member;
    - ``cls.rdl_type``, ``cls.rdl_path``: where it came from.

    The file is compiled once per path and the class is built once per set of
    arguments (cached), so repeated calls return the same class.

    Parameters
    ----------
    type_name : str
        The SystemRDL ``enum`` type, e.g. ``"gemv_error_e"``. It must be the
        ``encode`` of at least one field (that is how the compiler exposes it).
    shape : ShapeLike
        Shape of the enum in hardware (``3`` for a 3-bit port).
    name : str, optional
        Python class name; default from ``type_name`` (``gemv_error_e`` →
        ``GemvError``).
    path : str or Path, optional
        The SystemRDL file; default :data:`RDL_PATH`.

    Returns
    -------
    type
        A subclass of ``amaranth.lib.enum.IntEnum`` with ``shape``.

    Raises
    ------
    ValueError
        If the file has no field encoded with ``type_name``, or a value does
        not fit ``shape``.
    """
    path = str(Path(path if path is not None else RDL_PATH).resolve())
    return _build_rdl_enum(type_name, Shape.cast(shape), name or _enum_class_name(type_name),
                           path)


@functools.lru_cache(maxsize=32)
def _build_rdl_enum(type_name, shape, cls_name, path):
    types_found = _rdl_enum_types(path)
    if type_name not in types_found:
        raise ValueError(f"{path}: no field has 'encode = {type_name}' (enums used as encode: "
                         f"{', '.join(sorted(types_found)) or 'none'}); define the enum and "
                         f"use it on a field")
    members = types_found[type_name]
    for member_name, value, _ in members:
        if not Shape.cast(range(value, value + 1)).width <= shape.width or value < 0:
            raise ValueError(f"{path}: {type_name}.{member_name} = {value} does not fit the "
                             f"shape {shape!r}; widen the shape or renumber the enum")
    doc = "\n".join([f"Codes of the SystemRDL enum ``{type_name}`` (built by "
                     f":func:`lpaccel.rtl.regmap.rdl_enum`).", ""] +
                    [f"- ``{n} = {v}``: {d}" for n, v, d in members])

    def body(namespace):
        namespace["__doc__"] = doc
        namespace["__module__"] = __name__
        namespace["__qualname__"] = cls_name
        # Descriptors, not members: an enum class body turns plain values
        # into members but leaves properties and classmethods alone.
        namespace["desc"] = property(_member_desc)
        namespace["describe"] = classmethod(_describe)
        for member_name, value, _ in members:
            namespace[member_name] = value

    cls = types.new_class(cls_name, (enum.IntEnum,), {"shape": shape}, body)
    cls.rdl_type = type_name
    cls.rdl_path = path
    cls._rdl_descs = {n: d for n, _, d in members}
    return cls


#: Memory behind the DMA window, as ``CAP_MEMORY.KIND`` reports it (``mem_kind_e``).
MemoryKind = rdl_enum("mem_kind_e", 4, name="MemoryKind")

#: GEMV job error codes (``gemv_error_e``; ``ERROR.GEMV``, ``JOB_STATUS.ERROR``):
#: codes 1-5 are the engine's own checks (its 4-bit ``error`` port), the rest
#: are the SoC's job sequencer's.
GemvError = rdl_enum("gemv_error_e", 4, name="GemvError")

#: Per-descriptor DMA completion codes (``dma_error_e``; ``DMA_STATUS.ERROR``,
#: ``ERROR.DMA``), the 4-bit ``error`` field of a DMA status.
DmaError = rdl_enum("dma_error_e", 4, name="DmaError")


@dataclass(frozen=True)
class RegmapConfig:
    """What the capability registers report; feeds the RDL parameters.

    Every capability and depth value is derived from one
    :class:`~lpaccel.rtl.soc_config.SocConfig`, so the register map cannot
    disagree with the hardware it describes; only what is not a property of
    the hardware's shape (the build hash, the map's version) is given here.

    Parameters
    ----------
    soc : SocConfig, optional
        The SoC the map describes; default ``SocConfig()``.
    build_hash : int
        32-bit identifier of the gateware build (``BUILD_HASH``).
    version : tuple of (int, int)
        Register map version ``(major, minor)``.
    """

    soc: object = None
    build_hash: int = 0
    version: tuple = (0, 2)

    def __post_init__(self):
        # Imported here: the SoC configuration imports the blocks, and some
        # blocks take their enums from this package.
        from ..soc_config import SocConfig
        if self.soc is None:
            object.__setattr__(self, "soc", SocConfig())
        if not isinstance(self.soc, SocConfig):
            raise TypeError(f"soc must be a SocConfig, not {self.soc!r}")
        check_int("build_hash", self.build_hash, 0, (1 << 32) - 1)
        check_int("memory_size", self.memory_size, 0, (1 << 64) - 1)
        for name in ("dma_desc_depth", "dma_status_depth"):
            value = getattr(self, name)
            if not 1 <= value <= 255:
                raise ValueError(f"{name} is {value} but CAP_DMA holds 1 to 255; build the "
                                 f"DMA with a smaller queue_depth")
        if (not isinstance(self.version, tuple) or len(self.version) != 2 or
                not all(isinstance(v, int) and 0 <= v < 1 << 16 for v in self.version)):
            raise ValueError(f"version must be a (major, minor) pair of 16-bit integers, "
                             f"not {self.version!r}")

    @property
    def gemv(self):
        """The GEMV engine's configuration."""
        return self.soc.gemv

    @property
    def formats(self):
        """Weight formats compiled into the engine."""
        return tuple(WeightFormat(f) for f in self.soc.gemv.formats)

    @property
    def memory_kind(self):
        """The :class:`MemoryKind` behind the DMA window."""
        return MemoryKind[{"ONCHIP": "BRAM"}.get(self.soc.memory_standard,
                                                 self.soc.memory_standard)]

    @property
    def memory_size(self):
        """Bytes behind the DMA window."""
        return self.soc.memory_size

    @property
    def dma_desc_depth(self):
        """Descriptor queue entries of a DMA channel, as built."""
        return self.soc.dma.desc_depth

    @property
    def dma_status_depth(self):
        """Status queue entries of a DMA channel, as built."""
        return self.soc.dma.status_depth

    def parameters(self):
        """The SystemRDL parameter overrides of the top ``addrmap``.

        Returns
        -------
        dict
            Parameter name → integer.
        """
        return {
            "version_major": self.version[0],
            "version_minor": self.version[1],
            "build_hash": self.build_hash,
            "formats": sum(1 << int(f) for f in self.formats),
            "lanes": self.gemv.lanes,
            "word_bits": self.gemv.word_bits,
            "max_rows": self.gemv.max_rows,
            "max_cols": self.gemv.max_cols,
            "mem_kind": int(self.memory_kind),
            "mem_size": self.memory_size,
            "dma_desc_depth": self.dma_desc_depth,
            "dma_status_depth": self.dma_status_depth,
            "job_depth": self.soc.job_depth,
        }


@dataclass(frozen=True)
class Field:
    """One field of a register, flattened from the elaborated SystemRDL model.

    Attributes
    ----------
    name : str
        Field name (``"START"``).
    lsb, width : int
        Bit position inside the register (which may be 64 bits wide).
    access : str
        ``"RO"``, ``"RW"``, ``"W1C"``, ``"W1S"`` or ``"WO"``.
    reset : int or None
        Reset value; None for a field that only mirrors a hardware input.
    storage : bool
        The bank holds a flip-flop for this field.
    sw_readable, sw_writable : bool
    hw_readable : bool
        The bank drives the field's value towards the hardware (``value`` out).
    hw_writable : bool
        The hardware drives the field (``value`` in, or ``we``/``next``).
    singlepulse : bool
        A write of 1 makes a one-cycle ``pulse``; the field reads as 0.
    hwset, hwclr, we, counter : bool
        SystemRDL hardware-side controls present on this field.
    incrwidth : int
        Width of the counter's ``incr_value`` input, 0 for a count of one.
    hw_precedence : bool
        Hardware wins when software and hardware change the field in the
        same cycle (``precedence = hw``).
    encode : dict
        Enumerated values, name → value (empty when the field has no enum).
    desc : str
    """

    name: str
    lsb: int
    width: int
    access: str
    reset: object
    storage: bool
    sw_readable: bool
    sw_writable: bool
    hw_readable: bool
    hw_writable: bool
    singlepulse: bool
    hwset: bool
    hwclr: bool
    we: bool
    counter: bool
    incrwidth: int
    hw_precedence: bool
    encode: dict
    desc: str

    @property
    def msb(self):
        """Highest bit of the field."""
        return self.lsb + self.width - 1

    @property
    def mask(self):
        """The field's bits within the register value."""
        return ((1 << self.width) - 1) << self.lsb

    @property
    def constant(self):
        """The field is read-only and fixed at its reset value."""
        return not self.storage and not self.hw_writable

    @property
    def reads_as(self):
        """What software reads after reset (None: set by a hardware input)."""
        if not self.sw_readable or self.singlepulse:
            return 0
        return self.reset


@dataclass(frozen=True)
class Register:
    """One register: name, byte address, width and fields.

    Attributes
    ----------
    name : str
    address : int
        Byte address of the lowest 32-bit word.
    width : int
        32 or 64; a 64-bit register occupies two consecutive words.
    fields : tuple of Field
    desc : str
    """

    name: str
    address: int
    width: int
    fields: tuple
    desc: str = ""

    @property
    def words(self):
        """Number of 32-bit bus words."""
        return self.width // BUS_WIDTH

    @property
    def sw_readable(self):
        """Some field is readable: a read answers OKAY (else SLVERR)."""
        return any(f.sw_readable for f in self.fields)

    @property
    def sw_writable(self):
        """Some field is writable: a write answers OKAY (else SLVERR)."""
        return any(f.sw_writable for f in self.fields)

    @property
    def access(self):
        """The access kinds of the fields, joined (``"RO"``, ``"RW/W1C"``, ...)."""
        kinds = []
        for f in self.fields:
            if f.access not in kinds:
                kinds.append(f.access)
        return "/".join(kinds)

    def field(self, name):
        """Return the field called ``name``.

        Raises
        ------
        KeyError
            If there is no such field; the message lists the fields.
        """
        for f in self.fields:
            if f.name == name.upper():
                return f
        raise KeyError(f"register {self.name} has no field {name!r} "
                       f"(fields: {', '.join(f.name for f in self.fields)})")

    @property
    def reset(self):
        """What software reads from the register after reset, hardware inputs at 0."""
        return sum((f.reads_as or 0) << f.lsb for f in self.fields)

    def sw_write_mask(self):
        """Bits a software write can change the stored value of (RW, WO storage)."""
        return sum(f.mask for f in self.fields
                   if f.sw_writable and f.access in ("RW", "WO") and not f.singlepulse)


@dataclass(frozen=True)
class RegisterMap:
    """Every register of the map, in address order.

    Attributes
    ----------
    registers : tuple of Register
    config : RegmapConfig
        The configuration the capability values came from.
    """

    registers: tuple
    config: RegmapConfig

    def __iter__(self):
        return iter(self.registers)

    def __len__(self):
        return len(self.registers)

    def __getitem__(self, name):
        for reg in self.registers:
            if reg.name == name.upper():
                return reg
        raise KeyError(f"no register {name!r} in the lpaccel register map "
                       f"(registers: {', '.join(r.name for r in self.registers)})")

    def __contains__(self, name):
        return any(reg.name == str(name).upper() for reg in self.registers)

    @property
    def size(self):
        """Bytes spanned by the map, from address 0 to the end of the last register."""
        last = self.registers[-1]
        return last.address + last.width // 8

    def at(self, address):
        """Return ``(register, word index)`` at a byte address, or None if unmapped."""
        for reg in self.registers:
            offset = address - reg.address
            if 0 <= offset < reg.width // 8 and offset % 4 == 0:
                return reg, offset // 4
        return None


def _access(node):
    from systemrdl.rdltypes import AccessType, OnWriteType
    sw = node.get_property("sw")
    onwrite = node.get_property("onwrite")
    if sw == AccessType.r:
        return "RO"
    if sw == AccessType.w or sw == AccessType.w1:
        return "WO"
    if onwrite == OnWriteType.woclr:
        return "W1C"
    if onwrite == OnWriteType.woset:
        return "W1S"
    if onwrite is None:
        return "RW"
    raise ValueError(f"field {node.get_path()}: onwrite={onwrite.name} is not supported by the "
                     f"lpaccel CSR generator (supported: woclr, woset or none)")


def _field(node):
    from systemrdl.rdltypes import PrecedenceType
    path = node.get_path()
    unsupported = [p for p in ("rclr", "rset", "swmod", "swacc", "intr", "paritycheck",
                               "incr", "decr", "decrvalue", "overflow", "saturate",
                               "incrsaturate", "incrthreshold", "sticky", "stickybit")
                   if node.get_property(p, default=None) not in (None, False)]
    if node.get_property("incrvalue", default=1) not in (None, 1):
        unsupported.append("incrvalue")
    if unsupported:
        raise ValueError(f"field {path}: properties {', '.join(unsupported)} are not supported "
                         f"by the lpaccel CSR generator; use hwset/hwclr/we/counter/incrwidth "
                         f"or extend lpaccel.rtl.csr")
    encode = node.get_property("encode")
    return Field(
        name=node.inst_name,
        lsb=node.lsb,
        width=node.width,
        access=_access(node),
        reset=node.get_property("reset"),
        storage=node.implements_storage,
        sw_readable=node.is_sw_readable,
        sw_writable=node.is_sw_writable,
        hw_readable=node.is_hw_readable,
        hw_writable=node.is_hw_writable,
        singlepulse=bool(node.get_property("singlepulse")),
        hwset=bool(node.get_property("hwset")),
        hwclr=bool(node.get_property("hwclr")),
        we=bool(node.get_property("we")),
        counter=bool(node.get_property("counter")),
        incrwidth=node.get_property("incrwidth") or 0 if node.get_property("counter") else 0,
        hw_precedence=node.get_property("precedence") == PrecedenceType.hw,
        encode={m.name: m.value for m in encode} if encode is not None else {},
        desc=node.get_property("desc") or "",
    )


@functools.lru_cache(maxsize=8)
def _compile(parameters):
    return _compile_file(RDL_PATH, parameters)


def compile_regmap(config=None):
    """Compile and elaborate ``lpaccel.rdl`` with ``config``'s capability values.

    Parameters
    ----------
    config : RegmapConfig, optional
        Default ``RegmapConfig()``.

    Returns
    -------
    systemrdl.node.RootNode
        The elaborated model, as PeakRDL exporters take it.
    """
    config = config if config is not None else RegmapConfig()
    return _compile(tuple(sorted(config.parameters().items())))


@functools.lru_cache(maxsize=8)
def register_map(config=None):
    """The flattened register map for ``config``.

    Parameters
    ----------
    config : RegmapConfig, optional
        Default ``RegmapConfig()``.

    Returns
    -------
    RegisterMap

    Raises
    ------
    ValueError
        If the RDL uses something the generator does not implement (a field
        property, a register width that is not a multiple of 32 bits, a
        register not aligned to its width).
    """
    config = config if config is not None else RegmapConfig()
    root = compile_regmap(config)
    registers = []
    for node in root.top.registers():
        path = node.get_path()
        if node.is_array:
            raise ValueError(f"register {path}: arrays are not supported by the lpaccel CSR "
                             f"generator; instantiate the registers one by one")
        width = node.get_property("regwidth")
        if width not in (32, 64) or node.get_property("accesswidth") != BUS_WIDTH:
            raise ValueError(f"register {path}: regwidth must be 32 or 64 with accesswidth 32, "
                             f"not regwidth={width} accesswidth="
                             f"{node.get_property('accesswidth')}")
        if node.absolute_address % (width // 8):
            raise ValueError(f"register {path}: address {node.absolute_address:#x} is not "
                             f"aligned to its {width // 8}-byte width; move it")
        registers.append(Register(
            name=node.inst_name,
            address=node.absolute_address,
            width=width,
            fields=tuple(_field(f) for f in node.fields()),
            desc=node.get_property("desc") or node.get_property("name") or "",
        ))
    registers.sort(key=lambda r: r.address)
    return RegisterMap(registers=tuple(registers), config=config)
