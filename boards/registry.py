"""The boards lpaccel builds for, and the designs each one offers.

Every board lives in its own module (``boards/ulx3s.py``,
``boards/ecpix5.py``) that calls :func:`register_board` with a
:class:`BoardEntry` when it is imported; ``lpaccel.boards`` imports them
all, so :data:`BOARDS` is complete as soon as anything from
``lpaccel.boards`` is imported. A new board is one new module plus one line
in ``boards/__init__.py``.

A board lists the *designs* it can build (:data:`DESIGNS`), each a
:class:`BoardDesign`: how to make its top and at which clock.
:func:`find_design` turns a (board, design) pair into its entry and design,
with errors that name what is supported. A board with DRAM also carries its
LiteDRAM description (:class:`~lpaccel.boards.litedram.LiteDramBoard`),
which :func:`register_board` files in :data:`LITEDRAM_BOARDS` for
:func:`~lpaccel.boards.litedram.generate_litedram_core`.

This module imports nothing else of ``lpaccel.boards``, so board modules and
the LiteDRAM generator can both import it.
"""

from dataclasses import dataclass, field

__all__ = [
    "BOARDS",
    "DESIGNS",
    "LITEDRAM_BOARDS",
    "BoardDesign",
    "BoardEntry",
    "find_board",
    "find_design",
    "register_board",
]

#: Designs a board may offer: name -> what it is.
DESIGNS = {
    "gemv-selftest": "GEMV engine fed from on-chip ROMs, checking its own results",
    "dram-selftest": "board DRAM through a generated LiteDRAM core, written and read "
                     "back by AxiMemTest",
    "soc": "the accelerator SoC with on-chip memory, driven over the FT231X USB-UART by "
           "the host bridge",
}

#: Supported boards: name -> :class:`BoardEntry`, filled by :func:`register_board`.
BOARDS = {}

#: Boards with DRAM: LiteDRAM name (``"ulx3s"``) -> ``LiteDramBoard``, filled
#: by :func:`register_board` from :attr:`BoardEntry.dram`.
LITEDRAM_BOARDS = {}


@dataclass(frozen=True)
class BoardDesign:
    """One design a board can build.

    Parameters
    ----------
    make_top : callable
        ``make_top(core_mhz, variant)`` returns the top elaboratable.
    core_mhz : float
        Core clock target.
    fixed_clock : bool
        The clock is set by the design itself (a generated DRAM core's
        timings or PLL), so ``core_mhz`` cannot be changed at build time.
    variants : tuple of str
        Tops ``make_top`` knows; the first is the default. The report's
        ``top`` is the variant built.
    """

    make_top: object
    core_mhz: float
    fixed_clock: bool = False
    variants: tuple = ("selftest",)


@dataclass(frozen=True)
class BoardEntry:
    """How to build one board.

    Parameters
    ----------
    platform : callable
        Returns the amaranth platform class (imported lazily).
    family : str
        ``"ecp5"`` or ``"ice40"``: selects the utilization cell names.
    designs : dict
        Design name (a key of :data:`DESIGNS`) -> :class:`BoardDesign`; the
        first is the board's default.
    yosys_overrides : dict
        Template overrides for the Yosys script (``synth_opts``,
        ``script_after_synth``, ...), e.g. toolchain bug workarounds.
    programmer : str
        The ``openFPGALoader -b`` board name, for messages and docs.
    description : str
        One line: vendor, FPGA part, clock, memory.
    dram : LiteDramBoard or None
        The board's DRAM as LiteDRAM generates it (part, PHY, geometry,
        clocks); ``None`` for a board without a LiteDRAM core.

    Raises
    ------
    ValueError
        If ``designs`` is empty or names a design not in :data:`DESIGNS`.
    """

    platform: object
    family: str
    designs: dict = field(hash=False)
    yosys_overrides: dict = field(default_factory=dict, hash=False)
    programmer: str = ""
    description: str = field(default="", compare=False)
    dram: object = field(default=None, compare=False)

    def __post_init__(self):
        unknown = sorted(set(self.designs) - set(DESIGNS))
        if not self.designs or unknown:
            raise ValueError(f"designs must be a non-empty dict keyed by names in DESIGNS "
                             f"({', '.join(DESIGNS)}), not {sorted(self.designs)}")

    @property
    def default_design(self):
        """The design built when none is named."""
        return next(iter(self.designs))

    @property
    def core_mhz(self):
        """Core clock target of the default design."""
        return self.designs[self.default_design].core_mhz


def register_board(name, entry):
    """Add a board to :data:`BOARDS` (and its DRAM to :data:`LITEDRAM_BOARDS`).

    Parameters
    ----------
    name : str
        The board's name on the command line (``lpaccel build --board``),
        e.g. ``"ulx3s-85f"``.
    entry : BoardEntry

    Returns
    -------
    BoardEntry
        ``entry``.

    Raises
    ------
    ValueError
        If ``name`` or the DRAM's name is already registered (two board
        modules claiming one name), or ``entry`` is not a :class:`BoardEntry`.
    """
    if not isinstance(entry, BoardEntry):
        raise ValueError(f"board {name!r}: entry must be a BoardEntry, not {entry!r}")
    if name in BOARDS:
        raise ValueError(f"board {name!r} is registered twice; give the new board "
                         f"another name")
    if entry.dram is not None:
        if entry.dram.name in LITEDRAM_BOARDS:
            raise ValueError(f"board {name!r}: LiteDRAM name {entry.dram.name!r} is already "
                             f"used by another board; give its LiteDramBoard another name")
        LITEDRAM_BOARDS[entry.dram.name] = entry.dram
    BOARDS[name] = entry
    return entry


def find_board(board):
    """The :class:`BoardEntry` of ``board``.

    Raises
    ------
    ValueError
        If the board is not registered; the message lists the supported ones.
    """
    try:
        return BOARDS[board]
    except (KeyError, TypeError):
        supported = ", ".join(sorted(BOARDS))
        raise ValueError(f"board {board!r} is not supported (supported: {supported})") \
            from None


def find_design(board, design=None):
    """Look up a (board, design) pair.

    Parameters
    ----------
    board : str
        A key of :data:`BOARDS`.
    design : str or None
        A key of :data:`DESIGNS` the board offers; ``None`` for the board's
        default design.

    Returns
    -------
    tuple
        ``(entry, design name, BoardDesign)``.

    Raises
    ------
    ValueError
        Unknown board (the message lists the supported boards), unknown
        design (lists the board's designs and all designs), or a design the
        board does not offer (lists the board's designs and the boards that
        have it).
    """
    entry = find_board(board)
    if design is None:
        return entry, entry.default_design, entry.designs[entry.default_design]
    if design in entry.designs:
        return entry, design, entry.designs[design]
    supported = ", ".join(entry.designs)
    if design in DESIGNS:
        others = ", ".join(b for b, e in BOARDS.items() if design in e.designs)
        raise ValueError(f"board {board} does not support design {design!r} (supported on "
                         f"{board}: {supported}); choose one of those, or a board that has "
                         f"{design}: {others}")
    raise ValueError(f"design {design!r} is not known (board {board} supports: "
                     f"{supported}; all designs: {', '.join(DESIGNS)})")
