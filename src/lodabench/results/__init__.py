"""What runs add up to: tables, the paper comparison report, claims and statistics."""
