"""The parts of `python -m bench.scale_out`: one module per scenario (`latency`,
`idle`, `appends`, `jobs`) and the processes of a deployment (`deployment`)."""
