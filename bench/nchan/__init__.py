"""The parts of `python -m bench.fanout_vs_nchan`, one role each.

- `servers`: what a server under test is to the scenarios, and stopping its process;
- `c_client`: the C epoll load client (sseload.c), built and driven;
- `nginx`: nginx with Nchan, installed, configured from nginx.conf.template, started;
- `nchan_target`, `genwire_target`: each server's events and the subscribers' source;
- `scenarios`: the measured runs; `report`: their tables.
"""
