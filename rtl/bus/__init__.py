"""Bus interfaces: AXI4 (memory) and AXI4-Lite (control)."""
