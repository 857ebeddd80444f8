"""Errors raised by the SIP core.

Every problem with bytes from the network is a `ParseError`. It carries the
status code a UAS should answer with, so that the layer that owns the socket
can turn it into a response without knowing which check failed.
"""

from __future__ import annotations


class SipError(Exception):
    """Base class of the SIP core's own errors."""


class ParseError(SipError, ValueError):
    """A message, header or URI that does not follow the grammar.

    `status` is the response a UAS gives (400 unless a more specific code
    applies, e.g. 505 for a wrong SIP version). `message` is the partly parsed
    message when the headers needed to answer are there, else None.
    """

    def __init__(self, reason: str, status: int = 400, message: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.message = message
