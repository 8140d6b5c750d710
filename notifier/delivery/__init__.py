"""Getting queued notifications out: outbox draining, retry policy, pacing and digests.

    outbox -> claim -> render -> channel -> mark sent / retry / dead letter

Polling only queues and delivery only drains, so a slow or failing destination never delays
detection. The `Channel` base lives here rather than in `notifier.channels` so that channel
kinds depend on delivery and not the reverse: the daemon builds the channels from the
registry and hands them in, and nothing in this package needs to know which kinds exist.

The modules are imported by name (`notifier.delivery.channel`, `.cycle`, `.retry`, `.pacing`,
`.digest`) rather than re-exported here: the configuration reads channel settings from
`channel`, and the cycle reads the configuration, so a package that imported both at once
would import itself in a circle.
"""
