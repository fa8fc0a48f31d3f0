"""`berth run`: the manager (threads, signals, endpoints), work queue, triggers, HTTP
server, metrics, logs. Does not import cli."""
