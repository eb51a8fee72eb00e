"""Issue 17's table of hostile clients, reproduced against a real `genwire serve`
(`python -m bench.hostile`): one module per row, each starting the servers it needs.

`__main__` is the command line; `server` starts and reads the servers, `wire` speaks
raw HTTP/1.1 on sockets, `report` prints the table. Row 2 (slow subscribers) is
`bench/slow_subscribers.py`'s.
"""
