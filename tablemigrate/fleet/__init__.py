"""Many databases: which ones a fleet command covers, and one command over all of them.

tablemigrate.fleet.members says which databases, tablemigrate.fleet.dispatch runs the command on each."""
