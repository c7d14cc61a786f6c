"""lpaccel.rtl.csr"""
