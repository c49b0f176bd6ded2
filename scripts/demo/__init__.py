"""``make demo``: a working day at the one-stop desks of one province, through the HTTP API only.

With ``make run`` going, this drives a few hundred dossiers across a province's communes and its
procedures: receipts at the counter, online registrations checked at the desk (received or
refused), supplement requests and supplements, fees, appraisals, interlinked transfers, decisions (some
rejected with a reason), signing, stamping, results returned at the counter (those to go by post wait
for the postal service's delivery: ``scripts/demo/postal.py`` runs those flows), withdrawals,
stops and resumes, apologies for late results, and some dossiers left in process at the end of the day.
A few deliberately illegal requests show the rules the API enforces (409, 403, 422). It ends with a
summary computed from the API's own answers (and the metrics service's SLA report, when it answers).

    python -m scripts.demo [--dossiers 300] [--communes 12] [--province 79] [--seed 1]
                           [--dossier-url http://127.0.0.1:8000] [--metrics-url http://127.0.0.1:8003]

Tokens are minted locally with ``JWT_SECRET`` (default: the development key), one per role and unit.
The unit map is read like the services read it (``UNITS_FILE``), and the procedure catalogue from the
shipped data files, only to choose communes and procedures; everything else goes over HTTP.
Exit status: 0 on success, 1 when a step failed or a service answered 5xx, 2 when a service is missing.
"""

import warnings

# shared.auth imports nameko, which imports eventlet: both announce their deprecation on import.
warnings.filterwarnings("ignore", message=r"(?s).*(Eventlet is deprecated|pkg_resources is deprecated)")
