"""Behavioural models with exactly the interface of what they stand in for.

- :mod:`.lpddr`: the LPDDR device model and its timing checker, at the
  controller's DFI-style boundary.
"""
