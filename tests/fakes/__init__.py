"""Fakes of the remote providers (Replicate, fal, Runware), each a real HTTP server
written from that provider's published docs and official client code."""
