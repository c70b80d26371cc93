"""Media I/O: reading frames (PyAV), resizing and PNG writing (swscale), writing mp4 clips."""
