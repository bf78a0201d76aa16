"""burst: a cloud-bursting autoscaler for batch clusters with periodic load spikes."""

__version__ = "0.1.0"
