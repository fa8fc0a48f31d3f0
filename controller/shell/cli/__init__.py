"""`berth ...` commands: parsing and printing."""
