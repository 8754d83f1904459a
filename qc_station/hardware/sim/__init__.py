"""Simulated conveyor: the real firmware sources driven by a fake ``machine`` module and a belt."""
