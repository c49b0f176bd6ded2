"""One dossier's life that several integration tests walk: a land-use right registration
(procedure 1.012797) received at the desk of Phường Mỹ Bình (30280) in An Giang (89), handled by the
provincial land office, with the tax office (89-CT) fixing the financial obligation, then decided,
signed, stamped, resolved and returned at the counter (the example units file's tree).
"""

from __future__ import annotations

from tests.conftest import bearer

DESK, LAND = "30280", "1.012797"
DESK_OFFICER = bearer("desk_officer", DESK)
PROVINCE_OFFICER, TAX_OFFICER = bearer("handling_officer", "89"), bearer("handling_officer", "89-CT")
LEADER, CLERK = bearer("leader", "89"), bearer("clerk", "89")

# (action, who, body) from receipt to the result returned at the counter.
LIFE = [
    ("start_processing", DESK_OFFICER, {}),
    ("appraise", PROVINCE_OFFICER, {"opinion": "Hồ sơ hợp lệ"}),
    ("request_payment", PROVINCE_OFFICER, {"amount_vnd": 525_000}),
    ("record_payment", DESK_OFFICER, {"receipt_number": "BL-0001"}),
    ("transfer", PROVINCE_OFFICER, {}),
    ("transfer", TAX_OFFICER, {"reason": "Đã xác định nghĩa vụ tài chính"}),
    ("decide", LEADER, {"decision": "approved"}),
    ("sign", LEADER, {}),
    ("stamp", CLERK, {}),
    ("resolve", PROVINCE_OFFICER, {}),
    ("return", DESK_OFFICER, {"method": "counter"}),
]
TO_RESOLVED = LIFE[:-1]
