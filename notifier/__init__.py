"""notifier: tells people when something new is said on the blogs and threads they follow."""

__version__ = "0.1.0"
