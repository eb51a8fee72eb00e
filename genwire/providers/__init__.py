"""Remote generation providers (Replicate, fal, Runware) and how genwire follows
their jobs durably: `base` is the adapter interface, `follow` the one follower,
`remote` the adapters this process may call (SPEC §7.1)."""
