"""Print notifications to the terminal: for a first run, before SMTP or a webhook is set up.

It lets a new user see what notifier would send, with their own templates, by running it in
the foreground. Nothing can fail here except a closed stream, which no retry would fix.
"""

from __future__ import annotations

import sys
from typing import ClassVar, Literal, TextIO

from notifier.delivery.channel import Channel, ChannelConfig, ChannelContext, PermanentFailure
from notifier.models import Notice

SEPARATOR = "-" * 72


class ConsoleConfig(ChannelConfig):
    type: Literal["console"]
    stream: Literal["stdout", "stderr"] = "stdout"


class ConsoleChannel(Channel):
    kind: ClassVar[str] = "console"
    config_type: ClassVar[type[ChannelConfig]] = ConsoleConfig
    template_slots: ClassVar[tuple[str, ...]] = ("text",)
    config: ConsoleConfig

    def __init__(self, name: str, config: ChannelConfig, context: ChannelContext) -> None:
        if not isinstance(config, ConsoleConfig):
            raise TypeError(f"channel {name}: expected a console configuration")
        super().__init__(name, config, context)

    async def send(self, notice: Notice) -> None:
        text = self.render("text", notice)
        # Looked up at send time, not at start, so a redirected or captured stream is used.
        stream: TextIO = sys.stdout if self.config.stream == "stdout" else sys.stderr
        try:
            stream.write(f"{text.rstrip()}\n{SEPARATOR}\n")
            stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: write to a closed file
            raise PermanentFailure(f"console {self.name}: cannot write to "
                                   f"{self.config.stream}: {exc}") from None

    @classmethod
    def summarize(cls, config: ChannelConfig) -> str:
        stream = config.stream if isinstance(config, ConsoleConfig) else "stdout"
        return f"console on {stream}"
