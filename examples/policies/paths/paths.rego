# Path rules inside an app.
#
# Paths are compared in a canonical form so that /Admin, /ADMIN/, /admin;x=1
# and /admin/ all mean /admin (case-insensitive upstreams, Tomcat-style path
# parameters, trailing slashes). Gatehouse has already decoded the path once,
# removed dot-segments and merged slashes, and rejected encoded slashes.
package gatehouse.cookbook.paths

import data.gatehouse.cookbook.identity

# path: lower-cased, ";params" removed, no trailing slash (except "/").
default path := "/"

path := p if {
	p := trim_right(without_params, "/")
	p != ""
}

without_params := regex.replace(lower(input.request.path), `;[^/]*`, "") if contains(input.request.path, ";")

else := lower(input.request.path)

# /admin and below: administrators only, and only with MFA.
admin_area if path == "/admin"

admin_area if startswith(path, "/admin/")

deny contains "paths.admin_only" if {
	admin_area
	not identity.admin
}

require_mfa if admin_area

# The files app's /finance folder: the finance group (and admins) only.
finance_area if {
	input.route.name == "files"
	path == "/finance"
}

finance_area if {
	input.route.name == "files"
	startswith(path, "/finance/")
}

deny contains "paths.finance_only" if {
	finance_area
	not "finance" in identity.groups
	not identity.admin
}
