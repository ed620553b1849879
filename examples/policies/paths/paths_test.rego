package gatehouse.cookbook.paths_test

import data.gatehouse.cookbook.paths

req(route, path, groups) := {
	"route": {"name": route},
	"request": {"path": path},
	"user": {"sub": "u", "groups": groups},
}

test_canonical_path if {
	paths.path == "/admin/users" with input as req("wiki", "/Admin;jsessionid=1/Users/", [])
	paths.path == "/" with input as req("wiki", "/", [])
	paths.path == "/" with input as req("wiki", "/;x", [])
}

test_admin_area_denied_to_staff if {
	"paths.admin_only" in paths.deny with input as req("wiki", "/admin", ["staff"])
}

test_admin_area_case_tricks if {
	"paths.admin_only" in paths.deny with input as req("wiki", "/ADMIN/settings", ["staff"])
	"paths.admin_only" in paths.deny with input as req("wiki", "/Admin/", ["staff"])
	"paths.admin_only" in paths.deny with input as req("wiki", "/admin;foo=bar/x", ["staff"])
}

test_admin_area_needs_mfa if {
	paths.require_mfa with input as req("wiki", "/admin/x", ["admins"])
	count(paths.deny) == 0 with input as req("wiki", "/admin/x", ["admins"])
}

test_lookalike_is_not_admin_area if {
	not paths.require_mfa with input as req("wiki", "/administrators-guide", ["staff"])
	count(paths.deny) == 0 with input as req("wiki", "/administrators-guide", ["staff"])
}

test_finance_folder_finance_only if {
	"paths.finance_only" in paths.deny with input as req("files", "/finance/q3.xlsx", ["engineering"])
	"paths.finance_only" in paths.deny with input as req("files", "/Finance/Q3.xlsx", ["engineering"])
	"paths.finance_only" in paths.deny with input as req("files", "/FINANCE/", ["engineering"])
	count(paths.deny) == 0 with input as req("files", "/finance/q3.xlsx", ["Finance"])
	count(paths.deny) == 0 with input as req("files", "/finance/q3.xlsx", ["admins"])
}

test_finance_folder_only_in_files_app if {
	count(paths.deny) == 0 with input as req("wiki", "/finance", ["engineering"])
}
