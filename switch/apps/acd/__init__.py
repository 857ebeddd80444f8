"""Automatic call distribution: which agent gets which caller, and when.

The routing core is pure: state in, decision out. `Acd` (engine.py) takes
inputs (an agent logs in, a caller joins, an agent answers, the time passes)
with the time as an argument, and returns commands for the node (ring these
agents, send this caller to voicemail) and events for reports. Decisions are
made by router.py from the records and the time alone; every change of
state is a record written by compare-and-set (store.py).

The order of offers
-------------------

1. Who may take whom. A caller may be offered to an agent who is available,
   is a member of the caller's queue, whose tier has opened (tier 1 at once,
   tier n after the queue's tier_waits[n-2] seconds of waiting) and who has
   every skill the caller still requires at the level required (the queue's
   skills and the IVR's; the queue's relax steps lower every level as the
   caller waits, and a level lowered to 0 is no longer required). Not while
   the caller is kept for their sticky agent (the agent who served their
   number last, for sticky_wait seconds, if that agent is logged in and
   taking calls: to anyone else), nor to an agent who let this caller's offer
   ring out, for the ring timeout after.
2. Which caller first. Callers are ranked by one number across all queues,
   the rank key = enqueued_at - priority_step x (priority + queue weight):
   a caller of priority p in a queue of weight w ranks as if they had
   arrived priority_step x (p + w) seconds earlier. Equal keys go by arrival.
   An agent in several queues is offered the best-ranked caller they may
   take across all of them; a caller kept for an agent (sticky) comes first
   for that agent.
3. Which agent. Among the agents who may take the chosen caller, the lowest
   tier first, then the queue's strategy (strategies.py).

Priority cannot starve anyone (the aging rule): a caller who waited long
enough outranks any later caller, whatever their priority. With priorities
and weights at most 9 each, a caller is overtaken only by callers who
arrived less than priority_step x 18 seconds after them (priority_step x
(p' + w' - p - w) in general): every caller's rank is eventually the best.
FIFO holds within equal priority and weight.

`enqueued_at` is when the caller first entered any queue: overflowing to
another queue (exits) and asking for a callback keep it, so neither costs a
caller their place. An offer not answered sends the caller back with the same
rank: at the front if they were first.
"""

from .agents import TRANSITIONS, allowed_actions, transition
from .engine import MAX_HOPS, Acd
from .errors import AcdError, InvalidTransition, OfferGone
from .explain import Explanation
from .model import AgentRecord, Callback, Entry, Reservation
from .rules import QueueRules, TenantRules, need, rank_key
from .store import AcdStore, Conflict, MemoryStore, Write
from .strategies import STRATEGIES

__all__ = [
    "MAX_HOPS",
    "STRATEGIES",
    "TRANSITIONS",
    "Acd",
    "AcdError",
    "AcdStore",
    "AgentRecord",
    "Callback",
    "Conflict",
    "Entry",
    "Explanation",
    "InvalidTransition",
    "MemoryStore",
    "OfferGone",
    "QueueRules",
    "Reservation",
    "TenantRules",
    "Write",
    "allowed_actions",
    "need",
    "rank_key",
    "transition",
]
