# Role -> app matrix, from data: which groups may use which route.
# data.roles.apps maps a route name to the groups allowed on it; "*" means
# every signed-in user; group names are written in lower case.
# Administrators may use every app. Routes that are
# not in the matrix are closed to everyone but administrators.
package gatehouse.cookbook.roles

import data.gatehouse.cookbook.identity

default allow := false

allow if identity.admin

allow if {
	identity.signed_in
	"*" in data.roles.apps[input.route.name]
}

allow if {
	identity.signed_in
	some g in data.roles.apps[input.route.name] # group names lower-case in data
	g in identity.groups
}
