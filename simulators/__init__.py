"""Stand-ins for the parties motcua talks to, run as their own processes in development and tests."""
