"""Versioned schema migrations of the PanDA database, applied in order by
pandafacility.migrate: NNNN_name.sql, never edited once released (a checksum
guards that); a change is a new file."""
