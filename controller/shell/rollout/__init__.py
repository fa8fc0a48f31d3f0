"""Running plans: the executor loop and step performer, the traffic switch, DNS gating,
status rows. Imports neither daemon nor cli."""
