"""No models: tablemigrate keeps none; the module makes Django treat the app as a models app."""
