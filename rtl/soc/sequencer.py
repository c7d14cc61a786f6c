"""Job sequencer: GEMV jobs from the queue through the DMA into the engine and back.

(Interface fixed; the implementation follows.)
"""

from amaranth.hdl import Module, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..gemv.engine import GemvEngine
from ..regmap import DmaError, GemvError
from ..soc_config import SocConfig

__all__ = ["JobSequencer", "job_layout", "completion_layout", "status_layout", "events_layout",
           "act_header_bytes", "act_bytes"]


def job_layout():
    """A queued job: the JOB_* register values at JOB_PUSH."""
    return data.StructLayout({
        "fmt": unsigned(4),
        "group": unsigned(16),
        "rows": unsigned(16),
        "cols": unsigned(17),
        "weight_addr": unsigned(64),
        "act_addr": unsigned(64),
        "result_addr": unsigned(64),
        "tag": unsigned(16),
        "irq": unsigned(1),
    })


def completion_layout():
    """A completion record (JOB_STATUS)."""
    return data.StructLayout({
        "tag": unsigned(16),
        "error": GemvError,
        "dma": DmaError,
        "irq": unsigned(1),
    })


def status_layout():
    return data.StructLayout({
        "busy": 1,
        "aborting": 1,
        "active": 8,
    })


def events_layout():
    return data.StructLayout({
        "job_done": 1,
        "weight_word": 1,
        "stall_memory": 1,
        "stall_engine": 1,
        "stall_result": 1,
        "running": 1,
        "dma_done": 1,
        "dma_error": 1,
        "dma_code": DmaError,
    })


def act_header_bytes(cols):
    """Bytes of the exponent header of an activation vector of ``cols`` elements."""
    nb = cols // 32
    return -(-nb // 64) * 64


def act_bytes(cols):
    """Bytes of an activation vector in memory (header, then int16 mantissas)."""
    return act_header_bytes(cols) + 2 * cols


class JobSequencer(wiring.Component):
    """See ``/work/measure/soc_spec.md`` (interface)."""

    def __init__(self, config):
        if not isinstance(config, SocConfig):
            raise TypeError(f"config must be a SocConfig, not {config!r}")
        self.config = config
        dma = config.dma
        super().__init__({
            "jobs": In(stream.Signature(job_layout())),
            "completions": Out(stream.Signature(completion_layout())),
            "mm2s_descriptors": Out(stream.Signature(dma.descriptor_layout)),
            "mm2s_data": In(stream.Signature(dma.beat_layout)),
            "mm2s_status": In(stream.Signature(dma.status_layout)),
            "s2mm_descriptors": Out(stream.Signature(dma.descriptor_layout)),
            "s2mm_data": Out(stream.Signature(dma.beat_layout)),
            "s2mm_status": In(stream.Signature(dma.status_layout)),
            "dma_abort": Out(1),
            "dma_idle": In(1),
            "engine_job": Out(stream.Signature(GemvEngine.JobLayout)),
            "engine_activations": Out(stream.Signature(GemvEngine.ActivationLayout)),
            "engine_weights": Out(stream.Signature(unsigned(config.gemv.word_bits))),
            "engine_results": In(stream.Signature(GemvEngine.ResultLayout)),
            "engine_busy": In(1),
            "local_reset": Out(1),
            "drop_completions": Out(1),
            "abort": In(1),
            "soft_reset": In(1),
            "watchdog": In(32),
            "status": Out(status_layout()),
            "events": Out(events_layout()),
        })

    def elaborate(self, platform):
        m = Module()
        return m
