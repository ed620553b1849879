package gatehouse.authz_test

import data.gatehouse.authz

test_signed_in_allowed if {
	authz.allow with input as {"user": {"sub": "alice"}, "request": {"path": "/"}}
}

test_anonymous_refused if {
	not authz.allow with input as {"user": {"sub": ""}, "request": {"path": "/"}}
}

test_finance_for_finance_only if {
	"legacy.finance_only" in authz.deny with input as {"user": {"sub": "bob", "groups": ["staff"]}, "request": {"path": "/finance/q3"}}
	count(authz.deny) == 0 with input as {"user": {"sub": "alice", "groups": ["finance"]}, "request": {"path": "/finance/q3"}}
}
