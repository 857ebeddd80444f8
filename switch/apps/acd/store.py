"""The ACD's store: the protocol, Conflict, Write and MemoryStore live in switch/store/acd.py
(the Redis backend, below this layer, raises the same Conflict); re-exported here."""

from switch.store.acd import KINDS, AcdStore, Conflict, Kind, Listener, MemoryStore, Write

__all__ = ["KINDS", "AcdStore", "Conflict", "Kind", "Listener", "MemoryStore", "Write"]
