"""Wake-ups for streams and workers: in-process now, a broker when scaled out."""

from genwire.bus.base import Subscription
from genwire.bus.local import LocalBus
from genwire.interfaces import Bus

__all__ = ["Bus", "LocalBus", "Subscription"]
