"""The pure core: token budget arithmetic, the user's options, the size policies. No I/O; imports no other layer."""
