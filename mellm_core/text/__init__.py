"""The text side: FGMU instructions, reading a model's answer, label protocols, scoring."""
