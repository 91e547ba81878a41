"""`generate` and `baseline`: plan each changed table, verify the plan, write the modules."""
