"""The layers of a built stack, outermost first (each protocol, then its `inner`)."""


def chain(protocol):
    while protocol is not None:
        yield protocol
        protocol = getattr(protocol, "inner", None)
