"""cocotb testbenches shipped in the package, so the command line can run them.

The tests in ``tests/`` use them too; they are not importable outside a
cocotb simulation.
"""
