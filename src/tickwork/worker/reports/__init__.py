"""Report digests: gather the runs a report covers, digest them, send the digest."""
