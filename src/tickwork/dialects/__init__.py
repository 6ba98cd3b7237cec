"""Wire shapes of each API front door, translated to and from core values."""
