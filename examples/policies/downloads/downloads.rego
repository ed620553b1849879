# Downloads: ?download=1 (any case of the key, 1/true/yes) and PDFs under
# /s/ (any case: .PDF too). A download needs MFA; non-admins may not
# download at night (input.time.night, from the anomaly night window), and
# nobody may while the anomaly detector flags a bulk download.
package gatehouse.cookbook.downloads

import data.gatehouse.cookbook.identity
import data.gatehouse.cookbook.paths

download if {
	some key, values in input.request.query
	lower(key) == "download"
	some v in values
	lower(v) in {"1", "true", "yes"}
}

download if {
	startswith(paths.path, "/s/")
	endswith(paths.path, ".pdf")
}

require_mfa if download

deny contains "downloads.night" if {
	download
	input.time.night
	not identity.admin
}

deny contains "downloads.bulk" if {
	download
	"bulk_download" in input.risk.flags
}
