"""The accelerator SoC: job sequencer and top level (``docs/soc.md``)."""
