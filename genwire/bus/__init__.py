"""Wake-ups for streams and workers: in-process now, a broker when scaled out."""

from genwire.bus.base import Bus, Subscription
from genwire.bus.local import LocalBus

__all__ = ["Bus", "LocalBus", "Subscription"]
