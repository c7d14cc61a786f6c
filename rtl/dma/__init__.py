"""lpaccel.rtl.dma"""
