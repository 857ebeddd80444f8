"""The ACD's errors: each says what was asked, why it cannot be done, and what would work."""

from __future__ import annotations

__all__ = ["AcdError", "InvalidTransition", "OfferGone"]


class AcdError(ValueError):
    """An input the ACD cannot apply (unknown agent or caller, a bad reason, ...)."""


class OfferGone(AcdError):
    """An answer to an offer that is already over (rang out, withdrawn): hang up that leg."""


class InvalidTransition(AcdError):
    """An action the agent's current state does not allow; the message says what would."""

    def __init__(self, agent: str, status: str, action: str, allowed: list[str]) -> None:
        self.agent, self.status, self.action = agent, status, action
        super().__init__(
            f"agent {agent} is {status}: cannot {action} "
            f"(from {status} an agent can: {', '.join(allowed) or 'nothing'})"
        )
