"""Registration and the identity of agents: REGISTER, digest auth, bans, qualify.

- `bindings`: what a REGISTER asks for (pure, RFC 3261 §10.3);
- `service`: the registrar that answers it, and `flow_of(binding)`;
- `auth`: digest challenges and checks, failures counted for bans;
- `accounts`: agents from the config file and the directory;
- `gate`: banned addresses and SIP scanners dropped before any work;
- `guard`: INVITE/REFER/MESSAGE from a trunk (by address) or an agent (407);
- `qualify`: OPTIONS pings of agents' devices.
"""
