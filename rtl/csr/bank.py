"""The CSR bank, generated at elaboration time from the SystemRDL register map."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..bus.axi import AXI4LiteSignature, Resp
from ..regmap import BUS_WIDTH, register_map
from .axil import AXI4LiteSubordinate

__all__ = ["CsrBank", "field_port_name", "field_signature"]


def field_port_name(register, field):
    """Name of the bank's hardware-side member for ``field`` of ``register``.

    ``IRQ_STATUS.GEMV_DONE`` becomes ``irq_status_gemv_done``; its signals are
    ``irq_status_gemv_done.set`` etc. (``irq_status_gemv_done__set`` in
    Verilog).
    """
    return f"{register.name}_{field.name}".lower()


def field_signature(register, field):
    """The hardware-side signature of one field, from the bank's point of view.

    ========================================  =====================================
    field                                     members
    ========================================  =====================================
    constant (``sw=r``, ``hw=na``)            none (returns None)
    RO driven by hardware (``hw=w``)          ``value: In(width)``
    storage readable by hardware              ``value: Out(width)``
    ``singlepulse``                           ``pulse: Out(width)`` (one cycle)
    ``hwset`` / ``hwclr``                     ``set: In(1)`` / ``clear: In(1)``
    ``we``                                    ``we: In(1)``, ``next: In(width)``
    ``counter``                               ``incr: In(1)`` (+ ``incr_value:
                                              In(incrwidth)`` with ``incrwidth``)
    ========================================  =====================================

    Returns
    -------
    wiring.Signature or None

    Raises
    ------
    ValueError
        If the field combines properties the generator does not implement.
    """
    where = f"field {register.name}.{field.name}"
    members = {}
    if not field.storage:
        if field.hw_writable:
            members["value"] = In(field.width)
        return wiring.Signature(members) if members else None
    if field.hw_writable and not field.we:
        raise ValueError(f"{where}: hardware-writable storage needs 'we' (the hardware "
                         f"would overwrite the field every cycle); add 'we' or make it hw=r")
    if field.singlepulse:
        members["pulse"] = Out(field.width)
    elif field.hw_readable:
        members["value"] = Out(field.width)
    if field.hwset:
        members["set"] = In(1)
    if field.hwclr:
        members["clear"] = In(1)
    if field.we:
        members["we"] = In(1)
        members["next"] = In(field.width)
    if field.counter:
        members["incr"] = In(1)
        if field.incrwidth:
            members["incr_value"] = In(field.incrwidth)
    return wiring.Signature(members) if members else None


class CsrBank(wiring.Component):
    """Every register of the lpaccel map behind one AXI4-Lite subordinate port.

    The bank is generated from :func:`lpaccel.rtl.regmap.register_map` when
    it is elaborated; nothing about the map is written here. Each field with
    a hardware side gets one member named by :func:`field_port_name` with the
    signals listed in :func:`field_signature`.

    Bus behaviour (see ``docs/regmap.md``):

    * Every access is one aligned 32-bit word. Unaligned addresses and writes
      with ``wstrb`` not all ones answer ``SLVERR``; addresses where no
      register is answer ``DECERR``; writes to a register with no writable
      field and reads of a register with no readable field answer
      ``SLVERR``. None of these changes anything.
    * 64-bit registers are atomic: reading the low word returns the low half
      and latches the high half into a read shadow that the next read of the
      high word returns; writing the low word only fills a write shadow and
      writing the high word commits all 64 bits in one cycle. Software reads
      and writes low word first, then high word.
    * When software and hardware change a field in the same cycle, software
      wins unless the field says ``precedence = hw`` (the W1C status and
      error fields do, so an event is never lost to a clear).

    Parameters
    ----------
    regmap : RegisterMap, optional
        Default ``register_map()`` (the default :class:`RegmapConfig`).
    addr_width : int, optional
        Byte address width of the bus port; default the smallest width of at
        least 12 bits that holds the map.

    Attributes
    ----------
    bus : In(AXI4LiteSignature(addr_width=addr_width, data_width=32))
        The CSR port.
    <register>_<field> : Out(field_signature(...))
        Hardware side of each field that has one.
    """

    @staticmethod
    def _addr_width(regmap, addr_width):
        need = max(12, (regmap.size - 1).bit_length())
        if addr_width is None:
            return need
        if not isinstance(addr_width, int) or not need <= addr_width <= 32:
            raise ValueError(f"addr_width must be an integer from {need} (the register map "
                             f"spans {regmap.size:#x} bytes) to 32, not {addr_width!r}")
        return addr_width

    def __new__(cls, regmap=None, *, addr_width=None, **kwargs):
        # Checked before the object exists: a refused bank is never created,
        # so Amaranth has no unused elaboratable to warn about.
        cls._addr_width(regmap if regmap is not None else register_map(), addr_width)
        return super().__new__(cls, **kwargs)

    def __init__(self, regmap=None, *, addr_width=None):
        self.regmap = regmap if regmap is not None else register_map()
        self.addr_width = addr_width = self._addr_width(self.regmap, addr_width)
        members = {"bus": In(AXI4LiteSignature(addr_width=addr_width, data_width=BUS_WIDTH))}
        self._ports = {}
        for reg in self.regmap:
            for field in reg.fields:
                sig = field_signature(reg, field)
                if sig is None:
                    continue
                name = field_port_name(reg, field)
                if name in members:
                    raise ValueError(f"field {reg.name}.{field.name}: port name {name!r} is "
                                     f"already taken; rename the register or field")
                members[name] = Out(sig)
                self._ports[(reg.name, field.name)] = name
        super().__init__(members)

    def field_port(self, register, field):
        """Return the hardware-side interface of ``register.field`` (names as in the RDL)."""
        try:
            return getattr(self, self._ports[(register.upper(), field.upper())])
        except KeyError:
            raise KeyError(f"field {register}.{field} has no hardware side (constant, or not "
                           f"in the map)") from None

    def elaborate(self, platform):
        m = Module()
        m.submodules.subordinate = sub = AXI4LiteSubordinate(self.addr_width)
        wiring.connect(m, wiring.flipped(self.bus), sub.bus)
        acc = sub.access

        m.d.comb += [acc.w_resp.eq(Resp.DECERR), acc.r_resp.eq(Resp.DECERR),
                     acc.r_data.eq(0)]

        for reg in self.regmap:
            lname = reg.name.lower()
            words = reg.words
            sw_we = Signal(name=f"{lname}__sw_we")
            sw_data = Signal(reg.width, name=f"{lname}__sw_data")
            live = Signal(reg.width, name=f"{lname}__live")
            if words > 1:
                wshadow = Signal(BUS_WIDTH * (words - 1), name=f"{lname}__wshadow")
                rshadow = Signal(BUS_WIDTH * (words - 1), name=f"{lname}__rshadow")

            # Bus side: decode, responses, shadows.
            w_resp = Resp.OKAY if reg.sw_writable else Resp.SLVERR
            r_resp = Resp.OKAY if reg.sw_readable else Resp.SLVERR
            for word in range(words):
                address = reg.address + 4 * word
                last = word == words - 1
                with m.If(acc.w_addr == address):
                    m.d.comb += acc.w_resp.eq(w_resp)
                    if reg.sw_writable:
                        with m.If(acc.w_en):
                            if last:
                                m.d.comb += sw_we.eq(1)
                                if words > 1:
                                    m.d.comb += sw_data.eq(Cat(wshadow, acc.w_data))
                                else:
                                    m.d.comb += sw_data.eq(acc.w_data)
                            else:
                                m.d.sync += wshadow.word_select(word, BUS_WIDTH).eq(acc.w_data)
                with m.If(acc.r_addr == address):
                    m.d.comb += acc.r_resp.eq(r_resp)
                    if reg.sw_readable:
                        if word == 0:
                            m.d.comb += acc.r_data.eq(live[:BUS_WIDTH])
                            if words > 1:
                                with m.If(acc.r_en):
                                    m.d.sync += rshadow.eq(live[BUS_WIDTH:])
                        else:
                            m.d.comb += acc.r_data.eq(rshadow.word_select(word - 1, BUS_WIDTH))

            # Field side: storage, hardware ports, read value.
            for field in reg.fields:
                port = (getattr(self, self._ports[(reg.name, field.name)])
                        if (reg.name, field.name) in self._ports else None)
                bits = slice(field.lsb, field.lsb + field.width)
                if not field.storage:
                    if field.hw_writable:
                        m.d.comb += live[bits].eq(port.value)
                    else:
                        m.d.comb += live[bits].eq(Const(field.reset or 0, field.width))
                    continue
                store = Signal(field.width, init=field.reset or 0,
                               name=f"{lname}_{field.name.lower()}")
                written = sw_data[bits]
                if field.singlepulse:
                    # A one-cycle strobe: set by the write, gone the next cycle.
                    m.d.sync += store.eq(Mux(sw_we, written, 0))
                    m.d.comb += port.pulse.eq(store)
                    continue

                def sw_update(cur, field=field, written=written, sw_we=sw_we):
                    if field.access == "W1C":
                        new = cur & ~written
                    elif field.access == "W1S":
                        new = cur | written
                    else:
                        new = written
                    return Mux(sw_we, new, cur) if field.sw_writable else cur

                def hw_update(cur, field=field, port=port):
                    if field.we:
                        cur = Mux(port.we, port.next, cur)
                    if field.hwset:
                        cur = Mux(port.set, Const((1 << field.width) - 1, field.width), cur)
                    if field.counter:
                        step = port.incr_value if field.incrwidth else 1
                        cur = Mux(port.incr, (cur + step)[:field.width], cur)
                    if field.hwclr:
                        cur = Mux(port.clear, 0, cur)
                    return cur

                if field.hw_precedence:
                    nxt = hw_update(sw_update(store))
                else:
                    nxt = sw_update(hw_update(store))
                m.d.sync += store.eq(nxt)
                if port is not None and "value" in port.signature.members:
                    m.d.comb += port.value.eq(store)
                if field.sw_readable:
                    m.d.comb += live[bits].eq(store)
        return m
