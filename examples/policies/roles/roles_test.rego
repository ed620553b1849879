package gatehouse.cookbook.roles_test

import data.gatehouse.cookbook.roles

user(route, groups) := {"route": {"name": route}, "user": {"sub": "u", "groups": groups}}

test_finance_uses_files if roles.allow with input as user("files", ["finance"])

test_engineer_cannot_browse_hr if not roles.allow with input as user("hr", ["engineering"])

test_hr_uses_hr if roles.allow with input as user("hr", ["HR"])

test_everyone_chats if roles.allow with input as user("chat", [])

test_anonymous_cannot_chat if {
	not roles.allow with input as {"route": {"name": "chat"}, "user": {"sub": "", "groups": []}}
}

test_admin_uses_everything if {
	roles.allow with input as user("hr", ["admins"])
	roles.allow with input as user("unknown-app", ["admins"])
}

test_unknown_route_closed if not roles.allow with input as user("unknown-app", ["finance"])

test_finance_cannot_use_grafana if not roles.allow with input as user("grafana", ["finance"])
