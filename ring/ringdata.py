"""PLACEHOLDER: the ring-file helper replaces this module (RingData + read/write)."""
