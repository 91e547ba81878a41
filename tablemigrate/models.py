# tablemigrate keeps no Django models; this module exists so that Django treats the app as a models app.
