package gatehouse.cookbook.downloads_test

import data.gatehouse.cookbook.downloads

req(path, query, night, flags, groups) := {
	"route": {"name": "files"},
	"request": {"path": path, "query": query},
	"user": {"sub": "u", "groups": groups},
	"time": {"night": night},
	"risk": {"flags": flags},
}

day(path, query) := req(path, query, false, [], ["staff"])

test_query_download if {
	downloads.download with input as day("/x", {"download": ["1"]})
	downloads.download with input as day("/x", {"Download": ["TRUE"]})
	not downloads.download with input as day("/x", {"download": ["0"]})
	not downloads.download with input as day("/x", {})
}

test_pdf_download_case_tricks if {
	downloads.download with input as day("/s/report.pdf", {})
	downloads.download with input as day("/S/Report.PDF", {})
	downloads.download with input as day("/s/a/b/report.Pdf/", {})
	not downloads.download with input as day("/s/report.pdf.html", {})
	not downloads.download with input as day("/docs/report.pdf", {})
}

test_download_needs_mfa if {
	downloads.require_mfa with input as day("/s/report.pdf", {})
	not downloads.require_mfa with input as day("/s/report.txt", {})
}

test_no_downloads_at_night if {
	"downloads.night" in downloads.deny with input as req("/s/r.pdf", {}, true, [], ["staff"])
	count(downloads.deny) == 0 with input as req("/s/r.pdf", {}, false, [], ["staff"])
	count(downloads.deny) == 0 with input as req("/s/r.txt", {}, true, [], ["staff"])
}

test_admins_download_at_night if {
	count(downloads.deny) == 0 with input as req("/s/r.pdf", {}, true, [], ["admins"])
}

test_bulk_download_flag_denies_everyone if {
	"downloads.bulk" in downloads.deny with input as req("/x", {"download": ["1"]}, false, ["bulk_download"], ["admins"])
	count(downloads.deny) == 0 with input as req("/x", {"download": ["1"]}, false, ["night"], ["staff"])
}
