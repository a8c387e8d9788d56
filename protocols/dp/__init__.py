"""Distributed-DP building blocks on the protocols floor: integer noise samplers."""
