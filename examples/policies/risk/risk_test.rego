package gatehouse.cookbook.risk_test

import data.gatehouse.cookbook.risk

test_blocked_denies if risk.deny == {"risk.blocked"} with input as {"risk": {"blocked": true}}

test_not_blocked if count(risk.deny) == 0 with input as {"risk": {"blocked": false}}
