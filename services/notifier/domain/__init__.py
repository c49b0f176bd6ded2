"""The notifier's rules (messages.py): what the applicant is told, when, and how. Plain Python."""
