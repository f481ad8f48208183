"""Apply a verdict (enforce mode) or record what would have happened (monitor mode)."""
