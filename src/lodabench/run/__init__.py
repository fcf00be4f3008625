"""One run from the command line to its record: entry, preflight, spine, records, fingerprints, sweeps."""
