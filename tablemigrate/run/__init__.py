"""`run` and `revert`: rehearse, check the rows, apply, recover.

The applier, online rebuilds, the runner and its confirmation protocol, dry runs, drift, adoption of
further databases, content types after renames.
"""
