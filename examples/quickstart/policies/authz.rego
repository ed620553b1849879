# Quickstart policy: public routes are open, every other route needs a
# signed-in user, and a blocked session is refused. examples/policies holds a
# fuller cookbook (roles, paths, downloads, networks, break-glass).
package gatehouse.authz

default allow := false

allow if input.route.public

allow if input.user.sub != ""

deny contains "risk.blocked" if input.risk.blocked

default require_mfa := false
