"""The host bridge: a framed, CRC-checked protocol over a byte stream (docs/link.md)."""
