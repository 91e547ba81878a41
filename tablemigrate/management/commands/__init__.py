"""`manage.py tablemigrate` and the `manage.py migrate` that runs it where tablemigrate owns apps."""
