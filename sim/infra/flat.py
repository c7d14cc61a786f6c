"""Flat AXI ports for simulation tops: what cocotbext-axi looks for.

cocotbext-axi finds a bus by signal names (``AxiBus.from_prefix(dut,
"s_axi")`` wants ``s_axi_awaddr``, ``s_axi_awvalid``, ...). A simulation top
built with :func:`flat_members` exposes a structured AXI4 / AXI4-Lite port of
an inner component under those names, and :func:`connect_flat` wires the two.
This is test glue, so it lives in ``sim/``, not in the gateware.
"""

from amaranth.lib.wiring import Out

__all__ = ["flat_members", "connect_flat"]


def flat_members(signature, prefix, *, subordinate=True):
    """Flat top-level members named the way cocotbext-axi looks for them.

    ``aw.addr`` becomes ``{prefix}_awaddr`` and so on, so a simulation top
    built from these members is found by ``AxiBus.from_prefix(dut, prefix)``
    or ``AxiLiteBus.from_prefix(dut, prefix)``.

    Parameters
    ----------
    signature : AXI4Signature or AXI4LiteSignature
    prefix : str
    subordinate : bool
        True for a port the design serves (the testbench is the manager).

    Returns
    -------
    dict
        Member name → ``In``/``Out`` member, for a component's signature.
    """
    members = {}
    for ch_name, ch_member in signature.members.items():
        for f_name, f_member in ch_member.signature.members.items():
            flow = f_member.flow
            if subordinate:
                flow = flow.flip()
            members[f"{prefix}_{ch_name}{f_name}"] = flow(f_member.shape)
    return members


def connect_flat(m, flat, iface, signature, prefix, *, subordinate=True):
    """Wire the flat members made by :func:`flat_members` to ``iface``.

    Parameters
    ----------
    m : Module
    flat : object
        Holder of the flat signals (usually the top component itself).
    iface : wiring interface
        The structured AXI port of the inner component.
    """
    for ch_name, ch_member in signature.members.items():
        ch = getattr(iface, ch_name)
        for f_name, f_member in ch_member.signature.members.items():
            outer = getattr(flat, f"{prefix}_{ch_name}{f_name}")
            inner = getattr(ch, f_name)
            toward_inner = (f_member.flow == Out) == subordinate
            if toward_inner:
                m.d.comb += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)
