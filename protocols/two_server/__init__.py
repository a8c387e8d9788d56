"""Two non-colluding servers holding additive shares: input validation over the shares, robust rules."""

from protocols.two_server.round import RULES, TwoServerRobust

__all__ = ["RULES", "TwoServerRobust"]
