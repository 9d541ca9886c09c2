"""What every stage of the pipeline shares: atomic file writes and the warehouse-wide run lock."""
