"""LinkTransport, SerialPort and open_device: the whole Python stack without a simulator.

The device end is the golden link model (sim/golden/link.py) in front of the
driver's SoC test double (tests/driver/model.py), connected in memory
(LoopbackPort) or through a real pseudo-terminal (PtyServer + pyserial).
"""

import os

import numpy as np
import pytest

from lpaccel.driver import VERSION_MAJOR, Device, DeviceError
from lpaccel.link import Cmd, LinkError, LinkStatusError
from lpaccel.quant import quantize_weights
from lpaccel.rtl.config import GemvConfig
from lpaccel.rtl.soc_config import SocConfig
from lpaccel.transports import LinkTransport, PortError, SerialPort, open_device
from sim.golden.link import FaultInjector, LinkDeviceModel, LoopbackPort, PtyServer
from tests.driver.model import BusError as SocBusError
from tests.driver.model import SocModel
from tests.link.backend import LoggingBackend


def _soc():
    return SocConfig(gemv=GemvConfig(lanes=32, max_cols=1024), memory_size=1 << 18)


def _soc_over_link(to_device=None, to_host=None):
    soc = SocModel(_soc())
    model = LinkDeviceModel.over_transport(soc, bus_errors=(SocBusError,))
    port = LoopbackPort(model, to_device, to_host, clock=soc.wait_cycles)
    return soc, model, port


def _gemv(dev, fmt="q4_0", rows=96, cols=256, seed=0):
    rng = np.random.default_rng(seed)
    w = quantize_weights(rng.normal(0, 0.05, (rows, cols)).astype(np.float32), fmt)
    x = rng.normal(0, 1, cols).astype(np.float32)
    return dev.gemv(w, x)


def _direct_result(**kw):
    return _gemv(Device(SocModel(_soc())), **kw)


# --- memory and registers -----------------------------------------------------------------

def test_unaligned_writes_keep_the_bytes_around_them():
    backend = LoggingBackend(mem_bytes=1 << 14)
    link = LinkTransport(LoopbackPort(backend.model()), progress=False)
    backend.mem[:] = bytes(range(256)) * 64
    shadow = bytearray(backend.mem)
    rng = np.random.default_rng(0)
    for addr, n in [(1, 1), (2, 2), (3, 5), (4093, 7), (1022, 1030), (5, 4096 + 9), (0, 8)]:
        data = rng.bytes(n)
        link.write_mem(addr, data)
        shadow[addr:addr + n] = data
        assert backend.mem == shadow
        assert link.read_mem(addr, n) == data
        lo = max(0, addr - 3)
        assert link.read_mem(lo, addr + n + 3 - lo) == shadow[lo:addr + n + 3]


def test_transfers_are_split_into_frames():
    backend = LoggingBackend(mem_bytes=1 << 14)
    link = LinkTransport(LoopbackPort(backend.model()), progress=False)
    backend.log.clear()
    link.write_mem(0xC00, bytes(3000))          # 0xC00..0x17B8: cut at 0x1000
    assert [(a, len(d)) for k, a, d in backend.log if k == "wmem"] == \
        [(0xC00, 1024), (0x1000, 1024), (0x1400, 952)]


def test_register_access_and_errors():
    backend = LoggingBackend()
    link = LinkTransport(LoopbackPort(backend.model()), progress=False)
    link.write32(0x10, 0x1234_5678)
    assert link.read32(0x10) == 0x1234_5678
    link.write_regs(0x20, [1, 2, 3])
    assert link.read_regs(0x1C, 5) == [0, 1, 2, 3, 0]
    with pytest.raises(LinkStatusError, match="BUS_ERROR.*register map"):
        link.read32(0x400)
    with pytest.raises(ValueError, match="not a multiple of 4"):
        link.read32(0x11)


def test_link_info_and_stats():
    backend = LoggingBackend()
    link = LinkTransport(LoopbackPort(backend.model()), progress=False)
    assert link.info.frames == 1 and link.info.version == 1
    link.write32(0, 1)
    info = link.link_info()
    assert info.frames == 3 and info.counters()["duplicates"] == 0
    assert link.stats()["operations"] == 3


def test_progress_bar_on_long_uploads(capsys):
    backend = LoggingBackend(mem_bytes=1 << 17)
    link = LinkTransport(LoopbackPort(backend.model()), progress=True, progress_bytes=64 * 1024)
    link.write_mem(0, bytes(1000))
    assert "upload" not in capsys.readouterr().err
    link.write_mem(0, bytes(100 * 1024))
    assert "upload" in capsys.readouterr().err
    quiet = LinkTransport(LoopbackPort(backend.model()), progress=False)
    quiet.write_mem(0, bytes(100 * 1024))
    assert capsys.readouterr().err == ""


def test_a_port_that_never_answers():
    class DeadPort:
        def write(self, data):
            pass

        def read(self, max_bytes, timeout_s):
            return b""

    with pytest.raises(LinkError, match="does not answer.*9 attempts"):
        open_device(DeadPort(), timeout_s=0.0)


def test_a_bridge_of_another_protocol_version():
    backend = LoggingBackend()
    model = backend.model()
    real = model.link_info
    model.link_info = lambda: real().__class__(**{**real().__dict__, "version": 2})
    with pytest.raises(LinkError, match="link protocol 2, this library 1"):
        LinkTransport(LoopbackPort(model))


# --- the driver over the link ---------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["q4_0", "q4_1", "q8_0"])
def test_device_gemv_over_the_link(fmt):
    soc, model, port = _soc_over_link()
    dev = open_device(port, progress=False)
    y = _gemv(dev, fmt=fmt)
    assert np.array_equal(y.view(np.uint32), _direct_result(fmt=fmt).view(np.uint32))
    assert dev.info.memory_size == 1 << 18
    assert model.counters["crc_errors"] == 0 and model.counters["error_responses"] == 0
    assert soc.preloads == []          # tensors went over the link, not a backdoor


def test_device_gemv_over_a_faulty_link():
    soc, model, port = _soc_over_link()
    dev = open_device(port, progress=False)
    port.to_device = FaultInjector(0.2, seed=11)
    port.to_host = FaultInjector(0.2, seed=12)
    for seed in range(3):
        y = _gemv(dev, seed=seed)
        assert np.array_equal(y.view(np.uint32), _direct_result(seed=seed).view(np.uint32))
    assert model.counters["crc_errors"] > 0 and model.counters["duplicates"] > 0
    assert dev.transport.stats()["retries"] > 0


def test_register_map_version_mismatch_is_refused():
    soc, model, port = _soc_over_link()
    real = soc._read
    soc._read = lambda name: (7 << 16) if name == "VERSION" else real(name)
    with pytest.raises(DeviceError, match=f"register map version 7.0: this driver speaks major "
                                          f"version {VERSION_MAJOR}; use the lpaccel release"):
        open_device(port)


def test_not_an_lpaccel_behind_the_bridge():
    soc, model, port = _soc_over_link()
    real = soc._read
    soc._read = lambda name: 0 if name == "MAGIC" else real(name)
    with pytest.raises(DeviceError, match="MAGIC reads 0x00000000"):
        open_device(port)


# --- serial ports -------------------------------------------------------------------------

def test_serial_port_that_does_not_exist():
    with pytest.raises(PortError, match="serial port /dev/ttyUSB_nope does not exist.*"
                                        "serve-sim --pty"):
        open_device("/dev/ttyUSB_nope")
    with pytest.raises(PortError, match="ports present"):
        SerialPort("/dev/ttyUSB_nope")


def test_serial_port_that_does_not_answer():
    master, slave = os.openpty()
    try:
        with pytest.raises(LinkError, match=f"{os.ttyname(slave)} does not answer"):
            open_device(os.ttyname(slave), retries=1, timeout_s=0.02)
    finally:
        os.close(master)
        os.close(slave)


def test_ftdi_latency_timer_is_read_and_warned_about(tmp_path, monkeypatch):
    from lpaccel import transports
    master, slave = os.openpty()
    name = os.path.basename(os.ttyname(slave))
    sysfs = tmp_path / "usb-serial"
    (sysfs / name).mkdir(parents=True)
    try:
        assert transports.latency_timer_ms(os.ttyname(slave), sysfs) is None
        (sysfs / name / "latency_timer").write_text("16\n")
        assert transports.latency_timer_ms(os.ttyname(slave), sysfs) == 16
        monkeypatch.setattr(transports, "USB_SERIAL_SYSFS", str(sysfs))
        monkeypatch.setattr(transports.latency_timer_ms, "__defaults__", (str(sysfs),))
        with pytest.warns(UserWarning, match=f"latency timer is 16 ms.*echo 1 .*{name}"):
            SerialPort(os.ttyname(slave)).close()
        (sysfs / name / "latency_timer").write_text("1\n")
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            SerialPort(os.ttyname(slave)).close()
    finally:
        os.close(master)
        os.close(slave)


def test_device_over_a_pty():
    soc = SocModel(_soc())
    model = LinkDeviceModel.over_transport(soc, bus_errors=(SocBusError,))
    with PtyServer(model, clock=soc.wait_cycles) as server:
        dev = open_device(server.path, progress=False)
        try:
            y = _gemv(dev, rows=32, cols=128)
            assert np.array_equal(y.view(np.uint32),
                                  _direct_result(rows=32, cols=128).view(np.uint32))
            assert dev.transport.transact(Cmd.LINK_INFO, 0).words[0] == 0x4B4E4C4C
        finally:
            dev.transport.close()
    assert server.error is None


def test_pty_with_faults():
    backend = LoggingBackend()
    model = backend.model()
    with PtyServer(model, FaultInjector(0.2, seed=21), FaultInjector(0.2, seed=22),
                   stall_s=0.05) as server:
        link = LinkTransport(SerialPort(server.path, 3_000_000), baud=3_000_000,
                             timeout_s=0.03, progress=False)
        try:
            for i in range(40):
                link.write_regs(4 * i, [i, i + 1])
                assert link.read_regs(4 * i, 2) == [i, i + 1]
        finally:
            link.close()
    assert [backend.regs[4 * i] for i in range(41)] == list(range(41))


def test_a_port_failing_mid_operation_leaves_the_client_usable():
    backend = LoggingBackend()
    port = LoopbackPort(backend.model())
    link = LinkTransport(port, progress=False)
    real_write = port.write

    def unplugged(data):
        raise PortError("serial port /dev/ttyUSB0: unplugged")

    port.write = unplugged
    with pytest.raises(PortError, match="unplugged"):
        link.write32(0, 1)
    port.write = real_write
    link.write32(0, 2)
    assert backend.regs == {0: 2}


def test_serial_port_errors_name_the_port():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    port = SerialPort(path)
    os.close(master)
    os.close(slave)
    port.close()
    with pytest.raises(PortError, match=f"serial port {path}: .*unplugged"):
        port.write(b"x")
    with pytest.raises(PortError, match=f"serial port {path}: "):
        port.read(1, 0.0)
