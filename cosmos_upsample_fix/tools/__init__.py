"""The user-facing tools: the command line, scan, preview, the token report, the demo and the launcher."""
