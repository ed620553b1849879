package gatehouse.cookbook.identity_test

import data.gatehouse.cookbook.identity

test_groups_merge_groups_and_roles_lower_cased if {
	identity.groups == {"finance", "staff"} with input as {"user": {"sub": "u", "groups": ["Finance"], "roles": ["STAFF"]}}
}

test_admin_from_group if {
	identity.admin with input as {"user": {"sub": "u", "groups": ["Admins"]}}
}

test_admin_from_role_claim if {
	identity.admin with input as {"user": {"sub": "u", "groups": [], "roles": ["admins"]}}
}

test_not_admin if {
	not identity.admin with input as {"user": {"sub": "u", "groups": ["finance"]}}
}

test_anonymous_is_never_admin if {
	not identity.admin with input as {"user": {"sub": "", "groups": ["admins"]}}
}

test_signed_in if {
	identity.signed_in with input as {"user": {"sub": "u"}}
	not identity.signed_in with input as {"user": {"sub": ""}}
}
