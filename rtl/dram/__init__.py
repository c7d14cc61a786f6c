"""lpaccel.rtl.dram"""
