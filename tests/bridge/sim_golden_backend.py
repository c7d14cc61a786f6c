"""A register/memory backend for sim/golden/link.py shaped like the bridge test bench."""

from lpaccel.sim.golden.link import BusError, LinkDeviceModel


def make_model(regs, writable, mem):
    """A LinkDeviceModel over ``regs`` (address -> value; absent: DECERR), the
    ``writable`` addresses (others answer SLVERR on writes) and ``mem`` (a bytearray;
    beyond it DECERR, written word by word up to the failing one)."""
    def read32(addr):
        if addr not in regs:
            raise BusError(f"no register at {addr:#x}")
        return regs[addr]

    def write32(addr, value):
        if addr not in writable:
            raise BusError(f"register {addr:#x} is not writable")
        regs[addr] = value

    def read_mem(addr, n):
        if addr + n > len(mem):
            raise BusError(f"memory read at {addr:#x} beyond {len(mem):#x}")
        return bytes(mem[addr:addr + n])

    def write_mem(addr, data):
        if addr + len(data) > len(mem):
            raise BusError(f"memory write at {addr:#x} beyond {len(mem):#x}")
        mem[addr:addr + len(data)] = data

    return LinkDeviceModel(read32, write32, read_mem, write_mem)
