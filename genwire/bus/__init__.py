"""Wake-ups for streams and workers: in-process by default, Redis when scaled out."""

from genwire.bus.announced import AnnouncedEvents
from genwire.bus.base import Subscription
from genwire.bus.local import LocalBus
from genwire.interfaces import Bus


def bus_for(url: str | None) -> Bus:
    """The bus `--bus` names: Redis for `redis://…`, else this process's own."""
    if url is None:
        return LocalBus()
    from genwire.bus.redis import RedisBus  # only a scaled-out process needs redis-py

    return RedisBus(url)


__all__ = ["AnnouncedEvents", "Bus", "LocalBus", "Subscription", "bus_for"]
