"""Simulation tops: a block with its models, ports flattened for cocotb."""
