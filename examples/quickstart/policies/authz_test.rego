package gatehouse.authz_test

import data.gatehouse.authz

test_public_route_open if {
	authz.allow with input as {"route": {"name": "status", "public": true}, "user": {"sub": ""}, "risk": {"blocked": false}}
}

test_signed_in_user_allowed if {
	authz.allow with input as {"route": {"name": "chat"}, "user": {"sub": "u1"}, "risk": {"blocked": false}}
}

test_anonymous_refused if {
	not authz.allow with input as {"route": {"name": "chat"}, "user": {"sub": ""}, "risk": {"blocked": false}}
}

test_blocked_denied if {
	"risk.blocked" in authz.deny with input as {"route": {"name": "chat"}, "user": {"sub": "u1"}, "risk": {"blocked": true}}
}
