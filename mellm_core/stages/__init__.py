"""The Ray stages: maps, instructions, train, eval, serve; one module each. Ray is imported only here."""
