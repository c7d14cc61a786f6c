"""A register file and a memory that log every access: the backend of the link tests."""

from sim.golden.link import BusError, LinkDeviceModel


class LoggingBackend:
    """``regs`` words at ``[0, reg_bytes)`` and a ``bytearray`` memory; the rest is a bus error.

    Attributes
    ----------
    log : list
        ``("r32"|"w32", addr, value)`` and ``("rmem"|"wmem", addr, bytes)``.
    """

    def __init__(self, reg_bytes=0x400, mem_bytes=1 << 16, read_only=()):
        self.reg_bytes = reg_bytes
        self.regs = {}
        self.mem = bytearray(mem_bytes)
        self.read_only = set(read_only)
        self.log = []

    def read32(self, addr):
        if not 0 <= addr < self.reg_bytes:
            raise BusError(f"no register at {addr:#x}")
        value = self.regs.get(addr, 0)
        self.log.append(("r32", addr, value))
        return value

    def write32(self, addr, value):
        if not 0 <= addr < self.reg_bytes or addr in self.read_only:
            raise BusError(f"register {addr:#x} is not writable")
        self.log.append(("w32", addr, value))
        self.regs[addr] = value

    def read_mem(self, addr, n):
        if addr + n > len(self.mem):
            raise BusError(f"memory [{addr:#x}, {addr + n:#x}) outside the window")
        self.log.append(("rmem", addr, n))
        return bytes(self.mem[addr:addr + n])

    def write_mem(self, addr, data):
        if addr + len(data) > len(self.mem):
            raise BusError(f"memory [{addr:#x}, {addr + len(data):#x}) outside the window")
        self.log.append(("wmem", addr, bytes(data)))
        self.mem[addr:addr + len(data)] = data

    def model(self):
        """A :class:`LinkDeviceModel` over this backend."""
        return LinkDeviceModel(self.read32, self.write32, self.read_mem, self.write_mem)
