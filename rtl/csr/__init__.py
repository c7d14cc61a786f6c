"""lpaccel.rtl.csr: the CSR bank generated from the SystemRDL register map."""

from .axil import AXI4LiteSubordinate
from .bank import CsrBank, field_port_name, field_signature

__all__ = ["AXI4LiteSubordinate", "CsrBank", "field_port_name", "field_signature"]
