"""The outbound service's rules: what the national portal is told (portal.py). Plain Python."""
