package gatehouse.cookbook.breakglass_test

import data.gatehouse.cookbook.breakglass

req(route, groups, headers) := {
	"route": {"name": route},
	"request": {"headers": headers},
	"user": {"sub": "u", "groups": groups},
}

test_member_with_reason if {
	breakglass.allow with input as req("hr", ["break-glass"], {"x-break-glass-reason": "INC-4711 payroll outage"})
	breakglass.require_mfa with input as req("hr", ["break-glass"], {"x-break-glass-reason": "INC-4711 payroll outage"})
}

test_member_without_reason if {
	not breakglass.allow with input as req("hr", ["break-glass"], {})
	breakglass.deny == {"breakglass.reason_missing"} with input as req("hr", ["break-glass"], {})
}

test_reason_too_short if {
	not breakglass.allow with input as req("hr", ["break-glass"], {"x-break-glass-reason": "   because  "})
}

test_member_on_own_app_needs_no_reason if {
	count(breakglass.deny) == 0 with input as req("chat", ["break-glass"], {})
}

test_non_member_unaffected if {
	not breakglass.allow with input as req("hr", ["staff"], {"x-break-glass-reason": "INC-4711 payroll outage"})
	not breakglass.require_mfa with input as req("hr", ["staff"], {})
	count(breakglass.deny) == 0 with input as req("hr", ["staff"], {})
}
