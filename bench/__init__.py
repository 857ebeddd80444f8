"""`make bench`: performance figures of the switch, measured, not guessed."""
