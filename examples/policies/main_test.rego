package gatehouse.authz_test

import data.gatehouse.authz

# A full input document, as Gatehouse builds it (docs/policy.md).
base := {
	"request": {
		"id": "r1", "method": "GET", "host": "files.example.com", "path": "/docs/a.txt",
		"query": {}, "headers": {"user-agent": "test"}, "remote_ip": "10.0.0.7",
	},
	"user": {"sub": "u1", "email": "ana@example.com", "name": "Ana", "groups": ["finance"], "roles": []},
	"session": {"mfa": true, "amr": ["pwd", "otp"], "acr": "", "auth_time": 1764000000, "auth_age_seconds": 60},
	"route": {"name": "files", "host": "files.example.com", "public": false, "mfa": "optional"},
	"time": {"unix": 1764036000, "timezone": "Asia/Hong_Kong", "hour": 10, "weekday": "Tuesday", "night": false},
	"risk": {"flags": [], "requests_1h": 3, "downloads_1h": 0, "bytes_1h": 0, "blocked": false, "step_up": false, "reason": ""},
}

with_path(path) := json.patch(base, [{"op": "replace", "path": "/request/path", "value": path}])

test_finance_reads_files if {
	authz.allow with input as base
	count(authz.deny) == 0 with input as base
	not authz.require_mfa with input as base
}

test_public_route_allows_anonymous if {
	doc := json.patch(base, [
		{"op": "replace", "path": "/route/public", "value": true},
		{"op": "replace", "path": "/user/sub", "value": ""},
	])
	authz.allow with input as doc
}

test_engineer_cannot_browse_hr if {
	doc := json.patch(base, [
		{"op": "replace", "path": "/route/name", "value": "hr"},
		{"op": "replace", "path": "/user/groups", "value": ["engineering"]},
	])
	not authz.allow with input as doc
}

test_blocked_user_denied if {
	doc := json.patch(base, [{"op": "replace", "path": "/risk/blocked", "value": true}])
	authz.deny == {"risk.blocked"} with input as doc
}

test_admin_path_needs_admin_and_mfa if {
	authz.deny == {"paths.admin_only"} with input as with_path("/Admin/settings")
	admin := json.patch(with_path("/admin/settings"), [{"op": "replace", "path": "/user/groups", "value": ["admins"]}])
	authz.allow with input as admin
	authz.require_mfa with input as admin
}

test_night_pdf_download_denied if {
	doc := json.patch(with_path("/s/Q3.PDF"), [{"op": "replace", "path": "/time/night", "value": true}])
	authz.deny == {"downloads.night"} with input as doc
	authz.require_mfa with input as doc
}

test_office_only_route if {
	doc := json.patch(base, [
		{"op": "replace", "path": "/route/name", "value": "hr"},
		{"op": "replace", "path": "/user/groups", "value": ["hr"]},
		{"op": "replace", "path": "/request/remote_ip", "value": "203.0.113.9"},
	])
	authz.deny == {"network.outside_office"} with input as doc
}

test_break_glass if {
	doc := json.patch(base, [
		{"op": "replace", "path": "/route/name", "value": "grafana"},
		{"op": "replace", "path": "/user/groups", "value": ["break-glass"]},
	])
	authz.deny == {"breakglass.reason_missing"} with input as doc
	with_reason := json.patch(doc, [{"op": "add", "path": "/request/headers/x-break-glass-reason", "value": "INC-1 dashboards down"}])
	authz.allow with input as with_reason
	count(authz.deny) == 0 with input as with_reason
	authz.require_mfa with input as with_reason
}
